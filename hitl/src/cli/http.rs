//! The HTTP mode: a client of the JSON API an application serves with `hitl::server`.
//!
//! Every call sends `Authorization: Bearer <token>` when a token is set; the server records
//! the responder the token names. Error bodies are `{"error": {"code": …, "message": …}}`;
//! their message is shown as it is, and the status decides the exit code.

use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

use super::error::{CliError, Exit, exit_of_status};

/// A client of one server.
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Http {
    /// A client of the server at `url` (`http://host:port`, optionally with a path prefix).
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = Url::parse(url)
            .ok()
            .filter(|base| matches!(base.scheme(), "http" | "https") && !base.cannot_be_a_base())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "`{url}` is not a server URL; give one like `http://127.0.0.1:8080`"
                ))
            })?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("hitl-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::new(Exit::Failure, format!("cannot build an HTTP client: {error}")))?;
        Ok(Http { client, base, token })
    }

    /// `GET base/segments…?query`.
    pub(crate) async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, CliError> {
        self.send(Method::GET, segments, query, None).await
    }

    /// `POST base/segments…` with a JSON body.
    pub(crate) async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, CliError> {
        self.send(Method::POST, segments, &[], Some(body)).await
    }

    /// `base/segments…?query`, each segment percent-encoded (ids may hold `/` or spaces).
    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked to be a base URL")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let url = self.endpoint(segments, query);
        let mut request = self
            .client
            .request(method, url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| self.unreachable(&error))?;
        let json = if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(Value::Null)
        } else {
            serde_json::from_slice::<Value>(&bytes)
        };
        if status.is_success() {
            return json.map_err(|error| {
                CliError::new(
                    Exit::Failure,
                    format!("the server at {} answered {url} with something that is not JSON ({error}); is it a hitl server?", self.base),
                )
            });
        }
        let (code, message) = match &json {
            Ok(body) => (
                body["error"]["code"].as_str().unwrap_or_default().to_owned(),
                body["error"]["message"].as_str().unwrap_or_default().to_owned(),
            ),
            Err(_) => (String::new(), String::new()),
        };
        let mut text = if message.is_empty() {
            format!("the server answered {status}")
        } else {
            message
        };
        if !code.is_empty() {
            text.push_str(&format!(" ({} {code})", status.as_u16()));
        }
        if status.as_u16() == 401 {
            text.push_str("; pass the token the application printed with `--token` or HITL_TOKEN");
        }
        if status.as_u16() == 503 {
            // The server's text speaks of the library (`Engine::builder()`).
            text =
                format!("the application is shutting down ({status}); run the command again once it is back");
        }
        let mut error = CliError::new(exit_of_status(status.as_u16()), text);
        error.not_found = status.as_u16() == 404 && code == "not_found";
        Err(error)
    }

    fn unreachable(&self, error: &reqwest::Error) -> CliError {
        // reqwest's own text repeats the URL; the innermost cause says what happened.
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let cause = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            cause.to_string()
        };
        CliError::unreachable(format!(
            "cannot reach the hitl server at {}: {cause}; is the application running? \
             When it is stopped, open its database with `--db DIR` instead",
            self.base
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_base_path_and_encode_ids() {
        let endpoint = |base: &str, segments: &[&str], query: &[(&str, &str)]| {
            Http::new(base, None)
                .unwrap()
                .endpoint(segments, query)
                .to_string()
        };
        assert_eq!(
            endpoint(
                "http://127.0.0.1:8080",
                &["api", "requests"],
                &[("status", "pending")]
            ),
            "http://127.0.0.1:8080/api/requests?status=pending"
        );
        assert_eq!(
            endpoint(
                "https://ops.example.com/hitl/",
                &["api", "runs", "a/b c", "cancel"],
                &[]
            ),
            "https://ops.example.com/hitl/api/runs/a%2Fb%20c/cancel"
        );
        assert!(Http::new("ftp://example.com", None).is_err());
        assert!(Http::new("127.0.0.1:8080", None).is_err());
    }
}
