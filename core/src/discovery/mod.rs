//! The `discovery` and `pluginMetadata` services.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Root, Service, ServiceContext};

/// Where the backend listens: `backend.listen` in any of Backstage's forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The host to bind; empty for every interface.
    pub host: String,
    /// The port; 0 for any free port.
    pub port: u16,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListenForm {
    Port(u16),
    Text(String),
    Object {
        host: Option<String>,
        port: Option<PortForm>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortForm {
    Number(u16),
    Text(String),
}

impl Listen {
    /// Reads `backend.listen`: `7007`, `":7007"`, `"host:port"`, or `{ host, port }`. Absent:
    /// every interface, port 7007.
    ///
    /// ```
    /// use backstage::discovery::Listen;
    /// use backstage::RootConfig;
    /// let config = RootConfig::from_value(serde_json::json!({"backend": {"listen": "127.0.0.1:8080"}}));
    /// assert_eq!(Listen::from_config(&config).unwrap(), Listen { host: "127.0.0.1".into(), port: 8080 });
    /// ```
    pub fn from_config(config: &RootConfig) -> Result<Self> {
        let bad = |what: &str| {
            Error::input(format!(
                "backend.listen: {what}; write a port (7007), \"host:port\" or {{ host, port }}"
            ))
        };
        let form: Option<ListenForm> = config
            .get_optional("backend.listen")
            .map_err(|_| bad("not a valid listen address"))?;
        let parse_port = |text: &str| {
            text.trim()
                .parse::<u16>()
                .map_err(|_| bad(&format!("'{text}' is not a port")))
        };
        Ok(match form {
            None => Listen {
                host: String::new(),
                port: 7007,
            },
            Some(ListenForm::Port(port)) => Listen {
                host: String::new(),
                port,
            },
            Some(ListenForm::Text(text)) => match text.rsplit_once(':') {
                Some((host, port)) => Listen {
                    host: host.trim_matches(['[', ']']).to_owned(),
                    port: parse_port(port)?,
                },
                None => Listen {
                    host: String::new(),
                    port: parse_port(&text)?,
                },
            },
            Some(ListenForm::Object { host, port }) => Listen {
                host: host.unwrap_or_default(),
                port: match port {
                    None => 7007,
                    Some(PortForm::Number(port)) => port,
                    Some(PortForm::Text(text)) => parse_port(&text)?,
                },
            },
        })
    }
}

/// The `discovery` service: the URLs of plugins.
///
/// Internal URLs point at this backend as other backends on the network reach it
/// (`http://<listen host or localhost>:<port>/api/<id>`); external URLs start from
/// `backend.baseUrl` (`<baseUrl>/api/<id>`).
///
/// ```
/// use backstage::Discovery;
/// let discovery = Discovery::new("http://localhost:7007", "https://backstage.example.com");
/// assert_eq!(discovery.base_url("catalog"), "http://localhost:7007/api/catalog");
/// assert_eq!(discovery.external_base_url("catalog"), "https://backstage.example.com/api/catalog");
/// ```
#[derive(Clone, Debug)]
pub struct Discovery {
    internal: Arc<str>,
    external: Arc<str>,
    endpoints: Arc<[Endpoint]>,
}

/// One `discovery.endpoints` entry: where some plugins live instead of this backend.
#[derive(Clone, Debug, Deserialize)]
struct Endpoint {
    target: Target,
    plugins: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Target {
    Both(String),
    Split { internal: String, external: String },
}

/// `target` with `{{pluginId}}` (spaces allowed inside the braces) replaced by `plugin_id`.
fn fill(target: &str, plugin_id: &str) -> String {
    let mut out = String::with_capacity(target.len() + plugin_id.len());
    let mut rest = target;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        if rest[start + 2..start + len].trim() == "pluginId" {
            out.push_str(plugin_id);
        } else {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out.trim_end_matches('/').to_owned()
}

impl Discovery {
    /// Discovery with the given internal and external backend base URLs.
    pub fn new(internal: &str, external: &str) -> Self {
        Discovery {
            internal: internal.trim_end_matches('/').into(),
            external: external.trim_end_matches('/').into(),
            endpoints: Arc::new([]),
        }
    }

    fn endpoint(&self, plugin_id: &str) -> Option<&Target> {
        self.endpoints
            .iter()
            .find(|e| e.plugins.iter().any(|p| p == plugin_id))
            .map(|e| &e.target)
    }

    /// The URL other backends use to call plugin `plugin_id`: a `discovery.endpoints` target
    /// listing the plugin, else this backend.
    ///
    /// ```
    /// use backstage::{Discovery, RootConfig};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = RootConfig::from_value(serde_json::json!({
    ///     "backend": { "baseUrl": "http://localhost:7007" },
    ///     "discovery": { "endpoints": [
    ///         { "target": "http://node-backend:7007/api/{{pluginId}}", "plugins": ["catalog"] },
    ///     ]},
    /// }));
    /// let discovery = Discovery::from_config(&config).unwrap();
    /// assert_eq!(discovery.base_url("catalog"), "http://node-backend:7007/api/catalog");
    /// assert_eq!(discovery.base_url("carmen"), "http://localhost:7007/api/carmen");
    /// # });
    /// ```
    pub fn base_url(&self, plugin_id: &str) -> String {
        match self.endpoint(plugin_id) {
            Some(
                Target::Both(target)
                | Target::Split {
                    internal: target, ..
                },
            ) => fill(target, plugin_id),
            None => format!("{}/api/{plugin_id}", self.internal),
        }
    }

    /// Whether `discovery.endpoints` names plugin `plugin_id`: it lives on another backend.
    pub(crate) fn lists(&self, plugin_id: &str) -> bool {
        self.endpoint(plugin_id).is_some()
    }

    /// The URL browsers use to call plugin `plugin_id`.
    pub fn external_base_url(&self, plugin_id: &str) -> String {
        match self.endpoint(plugin_id) {
            Some(
                Target::Both(target)
                | Target::Split {
                    external: target, ..
                },
            ) => fill(target, plugin_id),
            None => format!("{}/api/{plugin_id}", self.external),
        }
    }

    /// Discovery as a backend reading `config` would set it up, listening where
    /// `backend.listen` says.
    pub fn from_config(config: &RootConfig) -> Result<Self> {
        Self::from_config_bound(config, None)
    }

    fn from_config_bound(config: &RootConfig, bound: Option<u16>) -> Result<Self> {
        let listen = Listen::from_config(config)?;
        let port = bound.unwrap_or(listen.port);
        let host = match listen.host.as_str() {
            "" | "0.0.0.0" | "::" => "localhost".to_owned(),
            host if host.contains(':') => format!("[{host}]"),
            host => host.to_owned(),
        };
        let internal = format!("http://{host}:{port}");
        let external: Option<String> = config.get_optional("backend.baseUrl")?;
        let endpoints: Vec<Endpoint> = config
            .get_optional("discovery.endpoints")?
            .unwrap_or_default();
        let mut discovery = Discovery::new(&internal, external.as_deref().unwrap_or(&internal));
        discovery.endpoints = endpoints.into();
        Ok(discovery)
    }
}

impl Service for Discovery {
    type Scope = Root;
    const ID: &'static str = "core.discovery";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::config::RootConfig);
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            Discovery::from_config_bound(ctx.config(), ctx.registry.bound.map(|a| a.port()))
        })
    }
}

/// The `pluginMetadata` service: which plugin this is.
///
/// ```
/// # async fn example(meta: backstage::PluginMetadata) { println!("{}", meta.id()); }
/// ```
#[derive(Clone, Debug)]
pub struct PluginMetadata {
    id: &'static str,
}

impl PluginMetadata {
    /// The plugin id.
    pub fn id(&self) -> &'static str {
        self.id
    }
}

impl Service for PluginMetadata {
    type Scope = PluginScoped;
    const ID: &'static str = "core.pluginMetadata";
    const OVERRIDABLE: bool = false;
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            ctx.plugin_id()
                .map(|id| PluginMetadata { id })
                .ok_or_else(|| Error::internal("plugin metadata asked for outside of a plugin"))
        })
    }
}

crate::plugin::register!(PluginMetadata, root Discovery);
