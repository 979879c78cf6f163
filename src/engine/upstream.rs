//! Where and how a request reaches its provider: the upstream path and the headers that
//! authenticate it, decided at request-header time.

use super::{HeaderOp, Operation};
use crate::config::{Provider, ProviderKind, UpstreamAuth};
use crate::llm::bedrock::{self, sigv4};
use crate::llm::gemini;

/// The provider's path for this operation. The client's query string is not forwarded.
pub fn path(provider: &Provider, operation: Operation, model: &str, stream: bool) -> String {
    let base = provider.base_path.as_str();
    let suffix = match operation {
        Operation::Chat => "/chat/completions",
        Operation::Embeddings => "/embeddings",
        Operation::Responses => "/responses",
    };
    match provider.kind {
        ProviderKind::Anthropic => format!("{base}/messages"),
        ProviderKind::Gemini if operation == Operation::Embeddings => gemini::batch_embed_path(base, model),
        ProviderKind::Bedrock if operation == Operation::Embeddings => bedrock::invoke_path(model),
        ProviderKind::Gemini => gemini::upstream_path(base, model, stream),
        ProviderKind::Bedrock => bedrock::upstream_path(model, stream),
        ProviderKind::AzureOpenAi => {
            let version = provider.api_version.as_deref().unwrap_or_default();
            format!("{base}/deployments/{model}{suffix}?api-version={version}")
        }
        _ => format!("{base}{suffix}"),
    }
}

/// SigV4 needs the hash of the body, which exists only after the request-header callback,
/// where the host still allows header changes. So the signature is computed in the body
/// callback and applied by a second instance of the module placed after Envoy's buffer
/// filter (see `envoy/bedrock-sigv4.yaml`).
#[derive(Debug, Clone)]
pub struct SigningPlan {
    pub host: String,
    pub path: String,
    pub region: String,
    pub credentials: sigv4::Credentials,
}

impl SigningPlan {
    pub fn sign(&self, body: &[u8], now_secs: u64) -> Vec<(String, String)> {
        let (path, query) = self.path.split_once('?').unwrap_or((self.path.as_str(), ""));
        let amz_date = sigv4::amz_date(now_secs);
        let payload_hash = sigv4::sha256_hex(body);
        let request = sigv4::SignRequest {
            method: "POST",
            host: &self.host,
            path,
            query,
            headers: &[],
            payload_hash: &payload_hash,
            region: &self.region,
            service: bedrock::SIGNING_NAME,
            amz_date: &amz_date,
        };
        sigv4::sign(&request, &self.credentials)
    }
}

/// Authority, credentials and the provider's required headers, and the plan for a
/// signature that must wait for the body.
pub fn headers(provider: &Provider, upstream_path: &str) -> (Vec<HeaderOp>, Option<SigningPlan>) {
    let mut ops: Vec<HeaderOp> =
        provider.static_headers.iter().map(|(name, value)| HeaderOp::Set(name.clone(), value.clone())).collect();
    let authority = match (&provider.authority, provider.kind, &provider.region) {
        (Some(authority), _, _) => Some(authority.clone()),
        (None, ProviderKind::Bedrock, Some(region)) => Some(bedrock::host(region)),
        _ => None,
    };
    if let Some(authority) = &authority {
        ops.push(HeaderOp::Set(":authority".to_string(), authority.clone()));
    }
    let mut signing = None;
    match &provider.auth {
        UpstreamAuth::None => {}
        UpstreamAuth::Header { name, value } => ops.push(HeaderOp::Set(name.clone(), value.expose().to_string())),
        UpstreamAuth::SigV4 { access_key, secret_key, session_token } => {
            signing = Some(SigningPlan {
                host: authority.unwrap_or_default(),
                path: upstream_path.to_string(),
                region: provider.region.clone().unwrap_or_default(),
                credentials: sigv4::Credentials {
                    access_key: access_key.expose().to_string(),
                    secret_key: secret_key.expose().to_string(),
                    session_token: session_token.as_ref().map(|t| t.expose().to_string()),
                },
            });
        }
    }
    (ops, signing)
}
