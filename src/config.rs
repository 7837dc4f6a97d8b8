//! The routing configuration of a deployment: Cloudflare's `assets` section
//! (`html_handling`, `not_found_handling`, `run_worker_first`) plus the
//! compatibility settings that change routing. One value of [`Config`] is
//! compiled into every bundle.

use std::fmt;
use std::str::FromStr;

/// How `.html` files and `index.html` directories map to request paths
/// (spec §1). The default is Cloudflare's: `auto-trailing-slash`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HtmlHandling {
    #[default]
    AutoTrailingSlash,
    ForceTrailingSlash,
    DropTrailingSlash,
    None,
}

impl HtmlHandling {
    pub const ALL: [HtmlHandling; 4] = [
        HtmlHandling::AutoTrailingSlash,
        HtmlHandling::ForceTrailingSlash,
        HtmlHandling::DropTrailingSlash,
        HtmlHandling::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HtmlHandling::AutoTrailingSlash => "auto-trailing-slash",
            HtmlHandling::ForceTrailingSlash => "force-trailing-slash",
            HtmlHandling::DropTrailingSlash => "drop-trailing-slash",
            HtmlHandling::None => "none",
        }
    }

    /// The on-disk code (see docs/FORMAT.md).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }
}

/// What answers a request that html_handling did not resolve (spec §2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NotFoundHandling {
    #[default]
    None,
    Page404,
    SinglePageApplication,
}

impl NotFoundHandling {
    pub const ALL: [NotFoundHandling; 3] = [
        NotFoundHandling::None,
        NotFoundHandling::Page404,
        NotFoundHandling::SinglePageApplication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotFoundHandling::None => "none",
            NotFoundHandling::Page404 => "404-page",
            NotFoundHandling::SinglePageApplication => "single-page-application",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }
}

/// An unknown value for one of the enumerated settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting} {value:?}: expected one of {expected}")]
pub struct BadSetting {
    pub setting: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for HtmlHandling {
    type Err = BadSetting;
    fn from_str(s: &str) -> Result<Self, BadSetting> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| BadSetting {
                setting: "html_handling",
                value: s.to_string(),
                expected: "auto-trailing-slash, force-trailing-slash, drop-trailing-slash, none",
            })
    }
}

impl FromStr for NotFoundHandling {
    type Err = BadSetting;
    fn from_str(s: &str) -> Result<Self, BadSetting> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| BadSetting {
                setting: "not_found_handling",
                value: s.to_string(),
                expected: "none, 404-page, single-page-application",
            })
    }
}

impl fmt::Display for HtmlHandling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for NotFoundHandling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `assets.run_worker_first`: a boolean, or a list of route patterns
/// (validated and matched by `rules::worker_first`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RunWorkerFirst {
    #[default]
    Off,
    On,
    Patterns(Vec<String>),
}

impl RunWorkerFirst {
    /// The on-disk code (see docs/FORMAT.md).
    pub fn code(&self) -> u8 {
        match self {
            RunWorkerFirst::Off => 0,
            RunWorkerFirst::On => 1,
            RunWorkerFirst::Patterns(_) => 2,
        }
    }
}

/// Everything about a deployment that changes how requests are answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub html_handling: HtmlHandling,
    pub not_found_handling: NotFoundHandling,
    pub run_worker_first: RunWorkerFirst,
    /// `YYYY-MM-DD`, or empty when not set.
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
}

/// The settings a `wrangler.json`, `wrangler.jsonc` or `wrangler.toml` gives.
/// `None` means the file does not set it (flags and defaults then apply).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileConfig {
    pub path: std::path::PathBuf,
    /// `assets.directory`, relative to the config file's directory.
    pub directory: Option<std::path::PathBuf>,
    pub html_handling: Option<HtmlHandling>,
    pub not_found_handling: Option<NotFoundHandling>,
    pub run_worker_first: Option<RunWorkerFirst>,
    pub compatibility_date: Option<String>,
    pub compatibility_flags: Option<Vec<String>>,
}

/// A configuration file that cannot be used, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// Config file names, in wrangler's order of preference.
pub const CONFIG_NAMES: [&str; 3] = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];

/// Finds a config file: in the asset directory itself, next to it (its
/// parent, the usual project layout), then in the working directory and its
/// ancestors.
pub fn discover(asset_dir: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    let find = |dir: &std::path::Path| {
        CONFIG_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    };
    if let Some(dir) = asset_dir.and_then(|d| d.canonicalize().ok()) {
        if let Some(p) = find(&dir).or_else(|| dir.parent().and_then(find)) {
            return Some(p);
        }
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().find_map(find)
}

/// Reads the routing settings of a wrangler configuration file.
pub fn load_file(path: &std::path::Path) -> Result<FileConfig, ConfigError> {
    let err = |message: String| ConfigError {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    let value: serde_json::Value = if is_toml {
        let v: toml::Value =
            toml::from_str(&text).map_err(|e| err(format!("invalid TOML: {e}")))?;
        serde_json::to_value(v).map_err(|e| err(e.to_string()))?
    } else {
        jsonc_parser::parse_to_serde_value(&text, &Default::default())
            .map_err(|e| err(format!("invalid JSON: {e}")))?
    };
    let mut out = FileConfig {
        path: path.to_path_buf(),
        ..Default::default()
    };
    let str_of = |v: &serde_json::Value, key: &str| -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| err(format!("`{key}` must be a string")))
    };
    if let Some(d) = value.get("compatibility_date") {
        out.compatibility_date = Some(str_of(d, "compatibility_date")?);
    }
    if let Some(f) = value.get("compatibility_flags") {
        let list = f
            .as_array()
            .ok_or_else(|| err("`compatibility_flags` must be a list of strings".into()))?;
        out.compatibility_flags = Some(
            list.iter()
                .map(|v| str_of(v, "compatibility_flags"))
                .collect::<Result<_, _>>()?,
        );
    }
    let Some(assets) = value.get("assets") else {
        return Ok(out);
    };
    if let Some(d) = assets.get("directory") {
        let dir = std::path::PathBuf::from(str_of(d, "assets.directory")?);
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        out.directory = Some(base.join(dir));
    }
    if let Some(h) = assets.get("html_handling") {
        out.html_handling = Some(
            str_of(h, "assets.html_handling")?
                .parse()
                .map_err(|e: BadSetting| err(e.to_string()))?,
        );
    }
    if let Some(n) = assets.get("not_found_handling") {
        out.not_found_handling = Some(
            str_of(n, "assets.not_found_handling")?
                .parse()
                .map_err(|e: BadSetting| err(e.to_string()))?,
        );
    }
    if let Some(r) = assets.get("run_worker_first") {
        out.run_worker_first = Some(match r {
            serde_json::Value::Bool(true) => RunWorkerFirst::On,
            serde_json::Value::Bool(false) => RunWorkerFirst::Off,
            serde_json::Value::Array(list) => RunWorkerFirst::Patterns(
                list.iter()
                    .map(|v| str_of(v, "assets.run_worker_first"))
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                return Err(err(
                    "`assets.run_worker_first` must be a boolean or a list of route patterns"
                        .into(),
                ))
            }
        });
    }
    Ok(out)
}
