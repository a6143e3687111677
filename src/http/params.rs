//! Query-string parsing that names the bad parameter.
//!
//! axum's `Query<T>` rejects with plain text and a generic message; riders' apps
//! need to know *which* parameter was wrong, so query strings are parsed here
//! into a map and each parameter is validated by name.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::domain::coords::Crs;
use crate::domain::site::{Amenity, AmenitySet, Kind, KindSet};
use crate::error::ApiError;

pub struct Params {
    values: HashMap<String, String>,
}

const MAX_VALUE_CHARS: usize = 64;

fn shorten(v: &str) -> String {
    let mut s: String = v.chars().take(MAX_VALUE_CHARS).collect();
    if s.len() < v.len() {
        s.push('…');
    }
    s
}

impl Params {
    /// Parse a raw query string; a parameter given twice is an error (which
    /// value was meant is unknowable).
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let mut values = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if values.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ApiError::param(k, "given more than once"));
            }
        }
        Ok(Params { values })
    }

    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn required<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        match self.raw(name) {
            None => Err(ApiError::param(name, "is required")),
            Some(v) => parse(v).map_err(|e| ApiError::param(name, e)),
        }
    }

    pub fn optional<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.raw(name)
            .map(|v| parse(v).map_err(|e| ApiError::param(name, e)))
            .transpose()
    }

    pub fn crs(&self) -> Result<Crs, ApiError> {
        Ok(self
            .optional("crs", |v| v.parse::<Crs>().map_err(|e| e.to_string()))?
            .unwrap_or_default())
    }

    /// `kind=a,b`: any of them; default every kind.
    pub fn kinds(&self) -> Result<KindSet, ApiError> {
        Ok(self
            .optional("kind", list::<Kind>)?
            .map_or(KindSet::ALL, |ks| ks.into_iter().collect()))
    }

    /// `amenity=a,b`: all of them required; default none.
    pub fn amenities(&self) -> Result<AmenitySet, ApiError> {
        Ok(self
            .optional("amenity", list::<Amenity>)?
            .map_or(AmenitySet::EMPTY, |a| a.into_iter().collect()))
    }

    /// `at=<RFC 3339>`; default now.
    pub fn at(&self) -> Result<DateTime<Utc>, ApiError> {
        Ok(self.optional("at", rfc3339)?.unwrap_or_else(Utc::now))
    }
}

pub fn finite_f64(v: &str) -> Result<f64, String> {
    let x: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("'{}' is not a number", shorten(v)))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("'{}' is not a finite number", shorten(v)))
    }
}

pub fn in_range(v: &str, lo: f64, hi: f64) -> Result<f64, String> {
    let x = finite_f64(v)?;
    if (lo..=hi).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is out of range [{lo}, {hi}]"))
    }
}

pub fn int_in_range(v: &str, lo: i64, hi: i64) -> Result<i64, String> {
    let x: i64 = v
        .parse()
        .map_err(|_| format!("'{}' is not an integer", shorten(v)))?;
    if (lo..=hi).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is out of range [{lo}, {hi}]"))
    }
}

pub fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("'{}' is not a boolean (true or false)", shorten(v))),
    }
}

pub fn rfc3339(v: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("'{}' is not an RFC 3339 time: {e}", shorten(v)))
}

/// A comma-separated list of values from a closed vocabulary; empty items are errors.
pub fn list<T: FromStr>(v: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    v.split(',')
        .map(|item| {
            if item.is_empty() {
                Err("empty item in comma-separated list".to_owned())
            } else {
                item.parse::<T>().map_err(|e| e.to_string())
            }
        })
        .collect()
}
