import sys, socket, socketserver, struct, time, threading
mode = sys.argv[2]; port = int(sys.argv[1])
class H(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request; data = b""
        while b"\r\n\r\n" not in data:
            d = s.recv(65536)
            if not d: return
            data += d
        m = mode
        if m == "429":
            b = b'{"error":{"message":"slow down","type":"rate_limit"}}'
            s.sendall(b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 7\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(b) + b)
        elif m == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
        elif m == "stall":
            time.sleep(5); s.close()
        elif m == "dies":
            s.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
            time.sleep(0.2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
        else:
            s.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
            for i in range(8 if m == "long" else 3):
                ev = b"data: {\"n\":%d}\n\n" % i
                s.sendall(b"%x\r\n%s\r\n" % (len(ev), ev)); time.sleep(0.3)
            s.sendall(b"0\r\n\r\n"); s.close()
class T(socketserver.ThreadingTCPServer): allow_reuse_address = True; daemon_threads = True
T(("127.0.0.1", port), H).serve_forever()
