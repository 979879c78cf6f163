//! Step 2 of a request: the whole body is admitted (strictly read, checked against the
//! route, budgeted) and patched in place or translated for the provider
//! ([`Exchange::on_request_body`]).

use super::{BodyAction, Exchange};
use crate::engine::reply::GatewayError;
use crate::engine::response::EmbeddingsReply;
use crate::engine::route::Route;
use crate::engine::{HeaderOp, Operation, Quota};
use crate::json_scan::{self, BodyFacts, Edit, InspectError, Member};
use crate::llm::dialect;
use crate::llm::embeddings;
use crate::llm::ir::{ClientDialect, ProviderDialect, TranslateError};
use crate::prompt::{take_selection, Context as PromptContext, Prompts, RawApi};
use crate::quota::Media;
use crate::usage::tokens_from_byte_count;

impl Exchange {
    /// The whole request body (the shell buffers it). Same dialect: patch `model` (and
    /// OpenAI's `stream_options`) in place. Otherwise: translate through the IR.
    pub fn on_request_body(
        &mut self,
        body: &[u8],
        now_ms: u64,
        quota: Option<Quota<'_>>,
        prompts: Option<&Prompts>,
    ) -> BodyAction {
        self.admission.body_seen = true;
        if let Some(reply) = self.reject_oversized_body(body.len()) {
            return BodyAction::Reply(reply);
        }
        match self.upstream_body(body, now_ms, quota, prompts) {
            Ok(Some(upstream)) => BodyAction::Replace(upstream),
            Ok(None) => BodyAction::Unchanged,
            Err(error) => BodyAction::Reply(self.reject(&error)),
        }
    }

    /// The body to send upstream (`None` when nothing was routed), or why the request is
    /// refused.
    fn upstream_body(
        &mut self,
        body: &[u8],
        now_ms: u64,
        quota: Option<Quota<'_>>,
        prompts: Option<&Prompts>,
    ) -> Result<Option<Vec<u8>>, GatewayError> {
        // One strict pass over the whole body before anything reads it: a key repeated in
        // any object is refused (the gateway, Envoy's json_to_metadata and the provider would
        // not agree on its value), and media parts are counted for the estimate.
        let facts = json_scan::inspect(body).map_err(|error| match error {
            // A prompt API's body is its variables: its own error names that.
            InspectError::Syntax(e) if self.request.prompt_api.is_some() => {
                GatewayError::PromptApi(crate::prompt::PromptError::InvalidBody { detail: e.to_string() })
            }
            error => inspect_error(error),
        })?;
        // A prompt API's body holds variables; one may be called `model`.
        if self.request.prompt_api.is_none() {
            let routed_by = self.request.requested_model.as_deref();
            if let Some(error) = body_model_error(body, &facts.members, routed_by, self.request.model_from_body) {
                return Err(error);
            }
        }
        if let Some(error) = self.admission.deferred_rejection.take() {
            return Err(error);
        }
        let Some(route) = self.route.clone() else { return Ok(None) };
        // Responses and Embeddings bypass the IR: the prompt layer screens their JSON.
        let screened = self.screen_raw(&route, body, prompts)?;
        let (body, facts) = match &screened {
            Some(masked) => (masked.as_slice(), json_scan::inspect(masked).map_err(inspect_error)?),
            None => (body, facts),
        };
        let media = Media {
            count: facts.media,
            tokens_each: crate::quota::estimate::media_tokens(route.dialect, &route.target_model),
        };
        // The prompt layer works on the IR, so configured prompts take the IR path even
        // when client and provider share a dialect.
        let prompts = prompts.filter(|_| self.request.operation == Some(Operation::Chat));
        let translated_embeddings =
            self.request.operation == Some(Operation::Embeddings) && route.dialect != ProviderDialect::OpenAi;
        let upstream = if translated_embeddings {
            self.translate_embeddings(&route, body, quota, now_ms)?
        } else if self.translates() || prompts.is_some() {
            self.translate_request(&route, body, media, quota, now_ms, prompts)?
        } else {
            self.patch_request(&route, body, &facts, media, quota, now_ms)?
        };
        if let Some(plan) = &route.signing {
            self.admission.deferred_headers = plan.sign(&upstream, now_ms / 1000);
        }
        Ok(Some(upstream))
    }

    /// Guards and masks for a Responses or Embeddings body (see `prompt::RawApi`): the masked
    /// body when a mask changed it.
    fn screen_raw(
        &self,
        route: &Route,
        body: &[u8],
        prompts: Option<&Prompts>,
    ) -> Result<Option<Vec<u8>>, GatewayError> {
        let api = match self.request.operation {
            Some(Operation::Responses) => RawApi::Responses,
            Some(Operation::Embeddings) => RawApi::Embeddings,
            _ => return Ok(None),
        };
        let Some(prompts) = prompts else { return Ok(None) };
        let consumer = self.request.consumer.as_ref().map(|c| c.name.as_str());
        let ctx = PromptContext { path: &self.request.path, consumer, model: &route.model };
        let screened = prompts.screen_raw(api, body, &ctx).map_err(GatewayError::Prompt)?;
        Ok(screened.map(|masked| masked.body))
    }

    fn patch_request(
        &mut self,
        route: &Route,
        body: &[u8],
        facts: &BodyFacts,
        media: Media,
        quota: Option<Quota<'_>>,
        now_ms: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        let members = &facts.members;
        let value = |key: &str| member_value(body, members, key);
        // The whole body is estimated, as the translated path does: `system`, `tools`,
        // `response_format`, `instructions`... are prompt too (the JSON around them makes it
        // a slight over-estimate, the safe side).
        self.admission.input_estimate = tokens_from_byte_count(body.len());
        self.admission.stream = value("stream") == Some(b"true");
        self.admission.client_wants_usage = self.request.client == ClientDialect::Anthropic;
        let mut edits =
            vec![json_scan::set_member(body, members, "model", &json_scan::json_string(&route.target_model))];
        edits.extend(self.output_cap_edits(route, body, members, media, quota, now_ms)?);
        if self.request.attempt && route.kind.max_tokens_field() == "max_tokens" && value("max_tokens").is_none() {
            // A fallback chain's attempt: the downstream instance capped output where OpenAI
            // reads it; a target that reads only `max_tokens` gets the cap there too.
            if let Some(cap) = value("max_completion_tokens").filter(|_| self.request.client == ClientDialect::OpenAi) {
                edits.push(json_scan::set_member(body, members, "max_tokens", cap));
            }
        }
        if self.admission.stream
            && self.request.client == ClientDialect::OpenAi
            && self.request.operation == Some(Operation::Chat)
        {
            let (wants, edit) = stream_options_edit(body, members, value("stream_options"));
            self.admission.client_wants_usage = wants;
            edits.extend(edit);
        }
        Ok(json_scan::apply_edits(body, &edits))
    }

    /// Reserves the budget for the output the body asks for (every choice may produce the
    /// whole cap), and the edits that lower or set the caps to what the budget pays for.
    fn output_cap_edits(
        &mut self,
        route: &Route,
        body: &[u8],
        members: &[Member],
        media: Media,
        quota: Option<Quota<'_>>,
        now_ms: u64,
    ) -> Result<Vec<Edit>, GatewayError> {
        let value = |key: &str| member_value(body, members, key);
        let mut edits = Vec::new();
        // Every member that caps output here, validated; the largest is what may be produced.
        let fields = output_fields(self.request.operation, self.request.client);
        let mut requested: Vec<(&str, u64)> = Vec::new();
        for field in fields {
            if let Some(n) = positive_integer(field, value(field), u64::MAX)? {
                requested.push((field, n));
            }
        }
        let choices = self.choices(body, members)?;
        let requested_max = requested.iter().map(|(_, n)| *n).max();
        // Each choice may produce the whole cap; with no cap, the default output reserve is
        // per choice too.
        let reserve = quota.map(|q| &q.policy.settings().reserve);
        let per_choice_ask =
            requested_max.or_else(|| reserve.filter(|_| choices > 1).map(|r| r.default_max_output_tokens));
        let total = per_choice_ask.map(|n| n.saturating_mul(choices));
        let clamped = self.reserve(route, quota, body, media, total, now_ms)?;
        // The client set no cap: clamping sets one (per choice), as it does for one choice.
        let clamped = clamped.or_else(|| {
            let clamp = reserve.is_some_and(|r| r.clamp) && requested_max.is_none();
            self.admission.reservation.as_ref().filter(|_| clamp).map(|r| r.output_tokens())
        });
        if let Some(clamped) = clamped {
            let per_choice = self.per_choice(quota, clamped, choices, now_ms)?;
            // Lower every cap above what the budget pays for; make sure the member the
            // provider reads carries it.
            for (field, n) in &requested {
                if *n > per_choice {
                    edits.push(json_scan::set_member(body, members, field, per_choice.to_string().as_bytes()));
                }
            }
            // Inserted only when no cap the provider honours was sent: OpenAI's family reads
            // both names and refuses both at once; the others may ignore the newer name.
            let read = self.provider_output_field(route);
            let honoured =
                |field: &str| Some(field) == read || (read == Some("max_completion_tokens") && field == "max_tokens");
            if let Some(read) = read.filter(|_| !requested.iter().any(|(f, _)| honoured(f))) {
                edits.push(json_scan::set_member(body, members, read, per_choice.to_string().as_bytes()));
            }
        }
        Ok(edits)
    }

    /// How many answers one request asks for (OpenAI chat `n`, and `best_of` that some
    /// OpenAI-compatible servers accept): each may produce the whole output cap.
    fn choices(&self, body: &[u8], members: &[Member]) -> Result<u64, GatewayError> {
        if (self.request.operation, self.request.client) != (Some(Operation::Chat), ClientDialect::OpenAi) {
            return Ok(1);
        }
        let value = |key: &str| member_value(body, members, key);
        // OpenAI's own bound on `n`.
        let n = positive_integer("n", value("n"), 128)?.unwrap_or(1);
        let best_of = positive_integer("best_of", value("best_of"), 128)?.unwrap_or(1);
        Ok(n.max(best_of))
    }

    /// The output cap of each choice when the budget pays for `total` output tokens in all;
    /// refuses (and gives the reservation back) when that is below the configured minimum.
    fn per_choice(
        &mut self,
        quota: Option<Quota<'_>>,
        total: u64,
        choices: u64,
        now_ms: u64,
    ) -> Result<u64, GatewayError> {
        let per_choice = total / choices.max(1);
        let minimum = quota.map_or(1, |q| q.policy.settings().reserve.min_output_tokens).max(1);
        if choices == 1 || per_choice >= minimum {
            return Ok(per_choice.max(1));
        }
        let headers = self.budget_headers(now_ms).into_iter().filter_map(|op| match op {
            HeaderOp::Set(name, value) => Some((name, value)),
            HeaderOp::Remove(_) => None,
        });
        let headers = headers.collect();
        if let (Some(quota), Some(reservation)) = (quota, self.admission.reservation.take()) {
            crate::quota::release(quota.store, reservation);
        }
        Err(GatewayError::OverBudget {
            message: format!(
                "The budget left pays for {total} output tokens: not enough for {choices} choices of at least \
                 {minimum} tokens each. Ask for fewer choices (`n`) or retry later."
            ),
            headers,
        })
    }

    /// The member the provider reads the output cap from, for the operations the gateway
    /// clamps (chat and Responses; embeddings produce no output tokens).
    fn provider_output_field(&self, route: &Route) -> Option<&'static str> {
        match (self.request.operation, self.request.client) {
            (Some(Operation::Chat), ClientDialect::OpenAi) => Some(route.kind.max_tokens_field()),
            (Some(Operation::Chat), ClientDialect::Anthropic) => Some("max_tokens"),
            (Some(Operation::Responses), _) => Some("max_output_tokens"),
            _ => None,
        }
    }

    fn translate_request(
        &mut self,
        route: &Route,
        body: &[u8],
        media: Media,
        quota: Option<Quota<'_>>,
        now_ms: u64,
        prompts: Option<&Prompts>,
    ) -> Result<Vec<u8>, GatewayError> {
        let consumer = self.request.consumer.as_ref().map(|c| c.name.clone());
        // A prompt API's route is only chosen when prompts are configured (`Gateway::route`).
        let mut request = if let (Some(prompts), Some(api)) = (prompts, &self.request.prompt_api) {
            let call = prompts
                .build_request(api, body, consumer.as_deref(), self.request.roll)
                .map_err(GatewayError::PromptApi)?;
            self.admission.template = Some((call.used.template, call.used.version));
            call.request
        } else {
            let selection = match prompts {
                Some(_) => take_selection(body).map_err(GatewayError::Prompt)?,
                None => None,
            };
            let (selection, body) = match &selection {
                Some((sel, stripped)) => (Some(sel), stripped.as_slice()),
                None => (None, body),
            };
            let mut request = dialect::decode_request(self.request.client, body).map_err(GatewayError::Translate)?;
            if let Some(prompts) = prompts {
                let ctx =
                    PromptContext { path: &self.request.path, consumer: consumer.as_deref(), model: &route.model };
                let applied =
                    prompts.prepare(&mut request, selection, &ctx, self.request.roll).map_err(GatewayError::Prompt)?;
                self.admission.template = applied.template.map(|t| (t.template, t.version));
            }
            request
        };
        dialect::require_messages(self.request.client, &request).map_err(GatewayError::Translate)?;
        request.model = route.target_model.clone();
        self.admission.stream = request.stream;
        self.admission.client_wants_usage = request.stream_usage;
        let path_depends_on_stream = matches!(route.dialect, ProviderDialect::Gemini | ProviderDialect::Bedrock);
        if path_depends_on_stream && request.stream != route.planned_stream {
            return Err(GatewayError::StreamNotRoutable);
        }
        let mut encoded = encode_for(route, &request)?;
        // Estimated from what the provider will read: template and decorator text included.
        if let Some(clamped) = self.reserve(route, quota, &encoded, media, request.max_tokens, now_ms)? {
            if request.max_tokens != Some(clamped) {
                request.max_tokens = Some(clamped);
                encoded = encode_for(route, &request)?;
            }
        }
        self.admission.input_estimate = tokens_from_byte_count(encoded.len());
        Ok(encoded)
    }

    /// An OpenAI embeddings request in Gemini's or Bedrock's embeddings API
    /// (`llm::embeddings`). Reserved like a passthrough embeddings request (no output cap);
    /// the input estimate is the text's, for a provider that reports no tokens.
    fn translate_embeddings(
        &mut self,
        route: &Route,
        body: &[u8],
        quota: Option<Quota<'_>>,
        now_ms: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        let Some(target) = embeddings::Target::of(route.dialect, &route.target_model) else {
            // `Gateway::route` refuses these before the body.
            return Err(GatewayError::UnsupportedOperation {
                operation: "embeddings",
                provider: route.provider.clone(),
            });
        };
        let request = embeddings::decode_request(body).map_err(GatewayError::Translate)?;
        let encoded =
            embeddings::encode_request(target, &route.target_model, &request).map_err(GatewayError::Translate)?;
        self.reserve(route, quota, &encoded, Media { count: 0, tokens_each: 0 }, None, now_ms)?;
        self.admission.input_estimate = tokens_from_byte_count(request.text_bytes());
        self.admission.embeddings = Some(EmbeddingsReply {
            target,
            inputs: request.inputs.len(),
            base64: request.base64,
            header_tokens: None,
            estimate: self.admission.input_estimate,
        });
        Ok(encoded)
    }

    /// Reserves the request's budget (when budgets apply). Returns the output cap the
    /// budget can pay for, when clamping lowered or set it.
    fn reserve(
        &mut self,
        route: &Route,
        quota: Option<Quota<'_>>,
        prompt: &[u8],
        media: Media,
        max_output_tokens: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<u64>, GatewayError> {
        let (Some(quota), Some(consumer)) = (quota, &self.request.consumer) else { return Ok(None) };
        // The estimator the config chose (exact BPE counting needs the upstream model), with
        // the least each image can cost.
        let estimate = quota.policy.prompt_with_media(prompt, max_output_tokens, media);
        let reserved = quota.policy.reserve(
            quota.store,
            &consumer.name,
            consumer.plan.as_deref(),
            &route.model,
            &route.target_model,
            estimate,
            now_ms / 1000,
        );
        match reserved {
            Ok(reservation) => {
                let cap = reservation.max_tokens();
                self.admission.reservation = Some(reservation);
                Ok(cap)
            }
            Err(rejection) => {
                Err(GatewayError::OverBudget { message: rejection.message(), headers: rejection.headers() })
            }
        }
    }
}

/// The body's `model` against the name the request was routed by. Envoy's json_to_metadata
/// read the model before the module saw the body, with its own parser; a body whose model
/// is not a string, or reads differently here, is refused rather than sent where it was
/// not meant to go. `members`: the body's top-level members, as `json_scan::inspect` read them.
fn body_model_error(
    body: &[u8],
    members: &[Member],
    routed: Option<&str>,
    routed_by_body: bool,
) -> Option<GatewayError> {
    let invalid = |message: &str| {
        Some(GatewayError::Translate(TranslateError::Invalid {
            field: "model".to_string(),
            message: message.to_string(),
        }))
    };
    let Some(raw) = member_value(body, members, "model") else {
        return if routed_by_body {
            invalid("the model was read before the body and is missing from it")
        } else {
            None
        };
    };
    match serde_json::from_slice::<String>(raw) {
        Err(_) => invalid("must be a string"),
        Ok(model) if routed_by_body && Some(model.as_str()) != routed => {
            invalid("the body names a different model than the one it was routed by")
        }
        Ok(_) => None,
    }
}

/// The raw value of top-level member `key`.
fn member_value<'a>(body: &'a [u8], members: &[Member], key: &str) -> Option<&'a [u8]> {
    json_scan::find(members, key).and_then(|m| body.get(m.value.clone()))
}

/// The body could not be admitted as it is.
fn inspect_error(error: InspectError) -> GatewayError {
    match error {
        InspectError::Syntax(e) => GatewayError::InvalidJson { detail: e.to_string() },
        InspectError::DuplicateKey { path, key } => GatewayError::DuplicateKey { path, key },
    }
}

/// The members that cap output tokens in the client's API, for one operation.
fn output_fields(operation: Option<Operation>, client: ClientDialect) -> &'static [&'static str] {
    match (operation, client) {
        (Some(Operation::Chat), ClientDialect::OpenAi) => &["max_completion_tokens", "max_tokens"],
        (Some(Operation::Chat), ClientDialect::Anthropic) => &["max_tokens"],
        (Some(Operation::Responses), _) => &["max_output_tokens"],
        _ => &[],
    }
}

/// A member that must be an integer from 1 to `max` when present (`null` is absent, as
/// OpenAI treats it); anything else is refused in OpenAI's wording, since a value the
/// gateway cannot read is one it cannot budget for.
fn positive_integer(field: &str, raw: Option<&[u8]>, max: u64) -> Result<Option<u64>, GatewayError> {
    let Some(raw) = raw.filter(|r| *r != b"null") else { return Ok(None) };
    let invalid =
        |message: String| GatewayError::Translate(TranslateError::Invalid { field: field.to_string(), message });
    let text = std::str::from_utf8(raw).unwrap_or_default();
    let is_integer =
        !text.is_empty() && text.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'));
    if !is_integer {
        let got = match raw.first() {
            Some(b'"') => "a string",
            Some(b'[') => "an array",
            Some(b'{') => "an object",
            Some(b't' | b'f') => "a boolean",
            _ => "a decimal",
        };
        return Err(invalid(format!("Invalid type for '{field}': expected an integer, but got {got} instead.")));
    }
    match text.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        Ok(n) if n > max => Err(invalid(format!(
            "Invalid '{field}': integer above maximum value. Expected a value <= {max}, but got {n} instead."
        ))),
        // Zero, negative, or beyond 64 bits (then also above any maximum).
        _ if text.starts_with('-') || text == "0" => Err(invalid(format!(
            "Invalid '{field}': integer below minimum value. Expected a value >= 1, but got {text} instead."
        ))),
        _ => Err(invalid(format!("Invalid '{field}': integer above maximum value, got {text} instead."))),
    }
}

/// The request in the provider's dialect; OpenAI-compatible servers that read only
/// `max_tokens` get the cap there.
fn encode_for(route: &Route, request: &crate::llm::ir::ChatRequest) -> Result<Vec<u8>, GatewayError> {
    let encoded = match route.dialect {
        ProviderDialect::OpenAi => {
            let legacy_max_tokens = route.kind.max_tokens_field() == "max_tokens";
            crate::llm::openai_chat::encode_request_with(
                request,
                crate::llm::openai_chat::EncodeOptions { legacy_max_tokens },
            )
        }
        _ => dialect::encode_request(route.dialect, request),
    };
    encoded.map_err(GatewayError::Translate)
}

/// For a streaming request: whether the client itself asked for usage, and the edit that
/// makes the provider report it.
fn stream_options_edit(body: &[u8], members: &[Member], current: Option<&[u8]>) -> (bool, Option<Edit>) {
    let parsed = current.map(serde_json::from_slice::<serde_json::Value>);
    let mut options = match parsed {
        Some(Ok(serde_json::Value::Object(map))) => map,
        // Absent or null: add ours. Anything else is the provider's to reject.
        None | Some(Ok(serde_json::Value::Null)) => serde_json::Map::new(),
        Some(_) => return (true, None),
    };
    if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
        return (true, None);
    }
    options.insert("include_usage".to_string(), serde_json::Value::Bool(true));
    let raw = serde_json::Value::Object(options).to_string();
    (false, Some(json_scan::set_member(body, members, "stream_options", raw.as_bytes())))
}
