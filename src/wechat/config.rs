//! WeChat's settings: `--wechat-appid`, the app secret (`--wechat-secret-file`
//! or `YIZHAN_WECHAT_SECRET`), `--wechat-endpoint`,
//! `--wechat-miniprogram-state` and `--wechat-templates`. Checked whole at
//! start; the secret appears in no log, `Debug` output or error message.

use std::path::Path;

use crate::domain::wechat::Templates;
use crate::sms::config::{Secret, parse_endpoint};

/// WeChat's API, unless `--wechat-endpoint` replaces it.
pub const DEFAULT_ENDPOINT: &str = "https://api.weixin.qq.com";

/// Which version of the mini program a message opens (`miniprogram_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MiniprogramState {
    /// The released version.
    #[default]
    Formal,
    /// The trial (体验版) version.
    Trial,
    /// The development version.
    Developer,
}

impl MiniprogramState {
    pub fn as_str(self) -> &'static str {
        match self {
            MiniprogramState::Formal => "formal",
            MiniprogramState::Trial => "trial",
            MiniprogramState::Developer => "developer",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WechatSettings {
    pub appid: String,
    pub secret: Secret,
    pub endpoint: url::Url,
    pub state: MiniprogramState,
    pub templates: Templates,
}

/// The flags' values, as given.
#[derive(Debug, Default)]
pub struct WechatArgs<'a> {
    pub appid: Option<&'a str>,
    pub secret_file: Option<&'a Path>,
    /// `YIZHAN_WECHAT_SECRET`.
    pub secret_env: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub state: MiniprogramState,
    pub templates: Option<&'a Path>,
}

/// The settings, `None` when no appid is given (WeChat is off); an error
/// names the flag or the file's key.
pub fn load(a: &WechatArgs<'_>) -> Result<Option<WechatSettings>, String> {
    let Some(appid) = a.appid.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if !appid.starts_with("wx")
        || appid.len() > 32
        || !appid.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err("--wechat-appid: expected the mini program's AppID (wx…)".into());
    }
    let secret = match (a.secret_file, a.secret_env.filter(|s| !s.trim().is_empty())) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("--wechat-secret-file {}: {e}", path.display()))?
            .trim()
            .to_owned(),
        (None, Some(s)) => s.trim().to_owned(),
        (None, None) => {
            return Err(
                "--wechat-appid is set but no app secret: give --wechat-secret-file or YIZHAN_WECHAT_SECRET"
                    .into(),
            );
        }
    };
    if secret.is_empty() || secret.chars().any(char::is_whitespace) {
        return Err("the WeChat app secret is empty or holds spaces".into());
    }
    let endpoint = parse_endpoint(a.endpoint.unwrap_or(DEFAULT_ENDPOINT))
        .map_err(|e| format!("--wechat-endpoint: {e}"))?;
    let templates = match a.templates {
        None => Templates::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--wechat-templates {}: {e}", path.display()))?;
            Templates::parse(&text)
                .map_err(|e| format!("--wechat-templates {}: {e}", path.display()))?
        }
    };
    Ok(Some(WechatSettings {
        appid: appid.to_owned(),
        secret: Secret::new(secret),
        endpoint,
        state: a.state,
        templates,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_appid_wechat_is_off() {
        assert!(load(&WechatArgs::default()).unwrap().is_none());
        let blank = WechatArgs {
            appid: Some(" "),
            ..WechatArgs::default()
        };
        assert!(load(&blank).unwrap().is_none());
    }

    #[test]
    fn the_secret_comes_from_a_file_or_the_environment_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "file-secret-1234\n").unwrap();
        let a = WechatArgs {
            appid: Some("wx0123456789abcdef"),
            secret_file: Some(&file),
            secret_env: Some("env-secret-5678"),
            ..WechatArgs::default()
        };
        let s = load(&a).unwrap().unwrap();
        assert_eq!(s.secret.expose(), "file-secret-1234");
        assert_eq!(s.endpoint.as_str(), "https://api.weixin.qq.com/");
        assert_eq!(s.state, MiniprogramState::Formal);
        assert!(!format!("{s:?}").contains("file-secret"));
        let env = WechatArgs {
            secret_file: None,
            ..a
        };
        assert_eq!(
            load(&env).unwrap().unwrap().secret.expose(),
            "env-secret-5678"
        );
        let none = WechatArgs {
            secret_env: None,
            ..env
        };
        assert!(load(&none).unwrap_err().contains("YIZHAN_WECHAT_SECRET"));
    }

    #[test]
    fn mistakes_name_their_flag() {
        let base = WechatArgs {
            appid: Some("wx0123456789abcdef"),
            secret_env: Some("s"),
            ..WechatArgs::default()
        };
        let bad_appid = WechatArgs {
            appid: Some("0123"),
            ..WechatArgs::default()
        };
        assert!(load(&bad_appid).unwrap_err().starts_with("--wechat-appid"));
        let plain = WechatArgs {
            endpoint: Some("http://api.weixin.qq.com"),
            ..base
        };
        assert!(load(&plain).unwrap_err().starts_with("--wechat-endpoint"));
        let loopback = WechatArgs {
            endpoint: Some("http://127.0.0.1:9"),
            ..plain
        };
        assert!(load(&loopback).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[seat_offered]\ntemplate_id = \"x\"\nfields = { time1 = \"event\" }",
        )
        .unwrap();
        let templates = WechatArgs {
            templates: Some(&file),
            ..loopback
        };
        let e = load(&templates).unwrap_err();
        assert!(e.contains("seat_offered.fields.time1"), "{e}");
    }
}
