//! Database URLs as they may appear in logs and errors: without the password.

/// `url` with its password replaced by `***`, in both URL form
/// (`postgres://user:secret@host/db`) and key-value form (`host=… password=secret`).
pub fn redact(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .map(|rest| ("postgres://", rest))
        .or_else(|| {
            url.strip_prefix("postgresql://")
                .map(|rest| ("postgresql://", rest))
        })
    {
        let (scheme, rest) = rest;
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(end) => rest.split_at(end),
            None => (rest, ""),
        };
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (userinfo, host) = authority.split_at(at);
                match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:***{host}"),
                    None => authority.to_owned(),
                }
            }
            None => authority.to_owned(),
        };
        return format!("{scheme}{authority}{}", redact_query(tail));
    }
    url.split(' ')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `?password=…` parameter of a URL's query, redacted.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_survive() {
        assert_eq!(
            redact("postgres://hitl:s3cr%40t@db.internal:5432/app?sslmode=disable"),
            "postgres://hitl:***@db.internal:5432/app?sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://hitl@localhost/app?password=hunter2&application_name=x"),
            "postgresql://hitl@localhost/app?password=***&application_name=x"
        );
        assert_eq!(
            redact("host=localhost user=hitl password=hunter2 dbname=app"),
            "host=localhost user=hitl password=*** dbname=app"
        );
        assert_eq!(redact("postgres://localhost"), "postgres://localhost");
        // An `@` inside the password: the host is after the last one.
        assert_eq!(redact("postgres://u:p@ss@host/db"), "postgres://u:***@host/db");
    }
}
