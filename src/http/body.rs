//! JSON request bodies, read field by field so that every bad value is a
//! problem naming its field: malformed JSON is 400 (`param: body`), a bad
//! field value 422 (`param:` the field).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Largest accepted body.
const MAX_BODY: usize = super::guard::JSON_BODY_LIMIT;

/// Why a body could not be read: too large (413), or cut short (400).
pub fn body_rejection(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!(
            "the body is larger than this endpoint accepts ({MAX_BODY} bytes for JSON)"
        ))
    } else {
        ApiError::param("body", e.body_text())
    }
}

/// A JSON object body.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.len() > MAX_BODY {
            return Err(ApiError::TooLarge(format!(
                "the body is larger than {MAX_BODY} bytes"
            )));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::param("body", "expected a JSON object")),
            Err(e) => Err(ApiError::param("body", format!("not valid JSON: {e}"))),
        }
    }
}

impl JsonObject {
    /// Fail on any field not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ApiError::unprocessable(
                k.clone(),
                format!("unknown field; expected one of: {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// Is the field there (null or not)?
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A field that must be present and not null.
    pub fn required<T>(
        &self,
        name: &str,
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(ApiError::unprocessable(name, "required")),
            Some(v) => parse(v).map_err(|e| ApiError::unprocessable(name, e)),
        }
    }

    /// Absent: `None`; null: `Some(None)`; a value: `Some(Some(parsed))`.
    pub fn nullable<T>(
        &self,
        name: &str,
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Option<Option<T>>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => parse(v)
                .map(|t| Some(Some(t)))
                .map_err(|e| ApiError::unprocessable(name, e)),
        }
    }

    /// Absent or a value (null is refused).
    pub fn optional<T>(
        &self,
        name: &str,
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Err(ApiError::unprocessable(name, "may not be null")),
            Some(v) => parse(v)
                .map(Some)
                .map_err(|e| ApiError::unprocessable(name, e)),
        }
    }
}

/// A string of 1..=max characters (trimmed).
pub fn text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let s = v.as_str().ok_or("expected a string")?.trim();
        if s.is_empty() {
            return Err("may not be empty".to_owned());
        }
        if s.chars().count() > max {
            return Err(format!("longer than {max} characters"));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err("contains control characters".to_owned());
        }
        Ok(s.to_owned())
    }
}

/// Like [`text`], but line breaks and tabs are allowed (descriptions).
pub fn multiline_text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let s = v.as_str().ok_or("expected a string")?.trim();
        if s.chars().count() > max {
            return Err(format!("longer than {max} characters"));
        }
        if s.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err("contains control characters".to_owned());
        }
        Ok(s.to_owned())
    }
}

/// A value parsed from a string by `FromStr`.
pub fn parsed<T: std::str::FromStr>(v: &Value) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.as_str()
        .ok_or("expected a string")?
        .parse()
        .map_err(|e: T::Err| e.to_string())
}

pub fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| "expected true or false".to_owned())
}

pub fn number_in(lo: f64, hi: f64) -> impl Fn(&Value) -> Result<f64, String> {
    move |v| {
        let x = v.as_f64().ok_or("expected a number")?;
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(format!("{x} is outside {lo}..{hi}"))
        }
    }
}

/// An integer in `lo..=hi`. As in JSON Schema, a number with no fractional
/// part is an integer (`40.0` is 40), whatever the sender's JSON library wrote.
pub fn int_in(lo: i64, hi: i64) -> impl Fn(&Value) -> Result<i64, String> {
    move |v| {
        let x = v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or("expected an integer")?;
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(format!("{x} is outside {lo}..{hi}"))
        }
    }
}

/// An array of at most `max` items, each parsed by `item`.
pub fn array<T>(
    max: usize,
    item: impl Fn(&Value) -> Result<T, String>,
) -> impl Fn(&Value) -> Result<Vec<T>, String> {
    move |v| {
        let items = v.as_array().ok_or("expected an array")?;
        if items.len() > max {
            return Err(format!("more than {max} items"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, x)| item(x).map_err(|e| format!("item {i}: {e}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_integer_may_be_written_as_a_whole_number() {
        let capacity = int_in(1, 100);
        assert_eq!(capacity(&json!(40)), Ok(40));
        assert_eq!(capacity(&json!(40.0)), Ok(40));
        assert_eq!(capacity(&json!(40.5)), Err("expected an integer".into()));
        assert_eq!(capacity(&json!("40")), Err("expected an integer".into()));
        assert_eq!(capacity(&json!(1e300)), Err("expected an integer".into()));
        assert_eq!(capacity(&json!(0.0)), Err("0 is outside 1..100".into()));
    }
}
