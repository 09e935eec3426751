//! The actions a plugin offers, and the `actionsRegistry` service that holds them.

use std::future::Future;
use std::sync::{Arc, RwLock};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::attributes::ActionAttributes;
use super::filter::Visibility;
use crate::auth::Credentials;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service, ServiceContext};

/// Why an invocation did not produce an output.
pub(crate) enum Failure {
    /// The input does not fit the action's input type (serde's explanation).
    Input(String),
    /// The action ran and failed.
    Failed(Error),
}

type Handler =
    Arc<dyn Fn(Value, Credentials) -> BoxFuture<'static, Result<Value, Failure>> + Send + Sync>;

/// An action: a typed operation a plugin offers to AI agents (Backstage's MCP actions backend
/// lists it as a tool) and to other plugins ([`super::Actions`]).
///
/// Most actions are declared with `#[action]` in a plugin's `#[routes]` block; this is the
/// same thing built by hand, for [`ActionsRegistry::register`].
///
/// ```
/// use backstage::actions::Action;
/// use backstage::Credentials;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Greet {
///     name: String,
/// }
///
/// let action = Action::new(
///     "greet",
///     "Greet someone",
///     "Answers with a greeting for `name`.",
///     |input: Greet, _credentials: Credentials| async move {
///         Ok(format!("Hello, {}!", input.name))
///     },
/// )
/// .read_only(true);
/// assert_eq!(action.name(), "greet");
/// ```
#[derive(Clone)]
pub struct Action {
    name: String,
    title: String,
    description: String,
    read_only: bool,
    destructive: Option<bool>,
    idempotent: bool,
    input_schema: Value,
    output_schema: Value,
    handler: Handler,
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("name", &self.name)
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

impl Action {
    /// An action named `name` (lowercase words joined by dashes), shown as `title`, described
    /// by `description`, whose input is `I` and output `O` (their JSON Schemas are what agents
    /// see), run by `handler` with the caller's credentials.
    pub fn new<I, O, F, Fut>(
        name: impl Into<String>,
        title: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Action
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(I, Credentials) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O>> + Send + 'static,
    {
        Self::from_parts(
            name,
            title,
            description,
            action_input::<I>(),
            action_output::<O>(),
            handler,
        )
    }

    /// [`Action::new`] with the input and output already checked: what `#[action]` expands
    /// to, so that a type that is not an input or an output is reported once, at the type.
    #[doc(hidden)]
    pub fn from_parts<I, O, F, Fut>(
        name: impl Into<String>,
        title: impl Into<String>,
        description: impl Into<String>,
        input: Input<I>,
        output: Output<O>,
        handler: F,
    ) -> Action
    where
        I: Send + 'static,
        O: 'static,
        F: Fn(I, Credentials) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let (parse, write) = (input.parse, output.write);
        Action {
            name: name.into(),
            title: title.into(),
            description: description.into(),
            read_only: false,
            destructive: None,
            idempotent: false,
            input_schema: (input.schema)(),
            output_schema: (output.schema)(),
            handler: Arc::new(move |input: Value, credentials: Credentials| {
                let handler = handler.clone();
                Box::pin(async move {
                    let input = parse(input).map_err(Failure::Input)?;
                    let output = handler(input, credentials).await.map_err(Failure::Failed)?;
                    write(output).map_err(|e| {
                        Failure::Failed(Error::internal(format!(
                            "the action's output is not JSON: {e}"
                        )))
                    })
                })
            }),
        }
    }

    /// Marks it read-only (and so, unless said otherwise, not destructive).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Marks it destructive or not (by default: destructive unless read-only).
    pub fn destructive(mut self, destructive: bool) -> Self {
        self.destructive = Some(destructive);
        self
    }

    /// Marks it idempotent.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Its name, unique within its plugin.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its attributes, with Backstage's defaults applied.
    pub fn attributes(&self) -> ActionAttributes {
        ActionAttributes {
            destructive: self.destructive.unwrap_or(!self.read_only),
            idempotent: self.idempotent,
            read_only: self.read_only,
        }
    }

    pub(crate) fn title(&self) -> &str {
        &self.title
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    pub(crate) fn schemas(&self) -> (&Value, &Value) {
        (&self.input_schema, &self.output_schema)
    }

    pub(crate) async fn invoke(
        &self,
        input: Value,
        credentials: Credentials,
    ) -> Result<Value, Failure> {
        (self.handler)(input, credentials).await
    }
}

/// The input of an action that takes none: any JSON is accepted, and its schema is an empty
/// object, as Backstage's is for an action without an input schema.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct NoInput;

impl<'de> serde::Deserialize<'de> for NoInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| NoInput)
    }
}

impl JsonSchema for NoInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoInput".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "properties": {},
            "additionalProperties": false,
        })
    }
}

/// How an action reads its input `I`: its schema, and its parser.
#[doc(hidden)]
pub struct Input<I> {
    schema: fn() -> Value,
    parse: fn(Value) -> Result<I, String>,
}

/// How an action writes its output `O`: its schema, and its writer.
#[doc(hidden)]
pub struct Output<O> {
    schema: fn() -> Value,
    write: fn(O) -> Result<Value, String>,
}

/// `T` as an action's input; generated per `#[action]`, spanned on the type, so a type that is
/// not `Deserialize + JsonSchema` is reported there.
#[doc(hidden)]
pub fn action_input<T: DeserializeOwned + JsonSchema>() -> Input<T> {
    Input {
        schema: schema_of::<T>,
        parse: |value| {
            serde_path_to_error::deserialize(value).map_err(|e| {
                let at = e.path().to_string();
                let inner = e.into_inner();
                if at == "." {
                    inner.to_string()
                } else {
                    format!("{at}: {inner}")
                }
            })
        },
    }
}

/// `T` as an action's output; generated per `#[action]`, spanned on the type.
#[doc(hidden)]
pub fn action_output<T: Serialize + JsonSchema>() -> Output<T> {
    Output {
        schema: schema_of::<T>,
        write: |value| serde_json::to_value(value).map_err(|e| e.to_string()),
    }
}

/// `T`'s JSON Schema as Backstage's actions describe their input and output (draft 7).
fn schema_of<T: JsonSchema>() -> Value {
    crate::json_schema::draft07::<T>()
}

/// Whether `name` is lowercase words (letters and digits) joined by single dashes.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The `actionsRegistry` service: the actions this plugin offers. Each is served at
/// `/api/<pluginId>/.backstage/actions/v1/actions` as `<pluginId>:<name>`.
///
/// ```
/// use backstage::actions::{Action, ActionsRegistry};
/// use backstage::prelude::*;
///
/// #[backend_plugin(id = "clock")]
/// pub struct Clock {
///     #[inject]
///     actions: ActionsRegistry,
/// }
///
/// #[routes]
/// impl Clock {
///     #[init]
///     async fn init(&self) -> Result<()> {
///         self.actions.register(
///             Action::new("now", "What time it is", "The time now, in seconds since 1970.",
///                 |_input: serde_json::Value, _creds: Credentials| async move {
///                     let now = std::time::SystemTime::now()
///                         .duration_since(std::time::UNIX_EPOCH)
///                         .map_or(0, |d| d.as_secs());
///                     Ok(now)
///                 })
///             .read_only(true),
///         )
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct ActionsRegistry {
    plugin_id: &'static str,
    actions: Arc<RwLock<Vec<Arc<Action>>>>,
    visibility: Arc<Visibility>,
}

impl std::fmt::Debug for ActionsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionsRegistry")
            .field("plugin_id", &self.plugin_id)
            .finish_non_exhaustive()
    }
}

impl ActionsRegistry {
    /// Offers `action`. Its name must be lowercase words joined by dashes, and unique within
    /// the plugin.
    pub fn register(&self, action: Action) -> Result<()> {
        if !valid_name(&action.name) {
            return Err(Error::input(format!(
                "action name '{}' of plugin '{}' must be lowercase words joined by dashes, like 'create-item'",
                action.name, self.plugin_id
            )));
        }
        let mut actions = self.actions.write().unwrap_or_else(|p| p.into_inner());
        if actions.iter().any(|a| a.name == action.name) {
            return Err(Error::input(format!(
                "Action with id \"{}:{}\" is already registered",
                self.plugin_id, action.name
            )));
        }
        actions.push(Arc::new(action));
        Ok(())
    }

    /// The plugin's id.
    pub(crate) fn plugin_id(&self) -> &'static str {
        self.plugin_id
    }

    /// Whether any action is registered (the plugin serves the actions endpoints only then).
    pub(crate) fn is_empty(&self) -> bool {
        self.actions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// The actions the config lets this plugin offer, with their ids.
    pub(crate) fn visible(&self) -> Vec<(String, Arc<Action>)> {
        self.actions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|action| {
                (
                    format!("{}:{}", self.plugin_id, action.name),
                    action.clone(),
                )
            })
            .filter(|(id, action)| {
                self.visibility.allows_source(self.plugin_id)
                    && self.visibility.allows(id, &action.attributes())
            })
            .collect()
    }

    /// The visible action with `id`.
    pub(crate) fn find(&self, id: &str) -> Option<Arc<Action>> {
        self.visible()
            .into_iter()
            .find(|(visible, _)| visible == id)
            .map(|(_, action)| action)
    }
}

impl Service for ActionsRegistry {
    type Scope = PluginScoped;
    const ID: &'static str = "core.actionsRegistry";
    const DEPENDENCIES: &'static [&'static str] = &[];
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            Ok(ActionsRegistry {
                plugin_id: ctx.plugin_id().unwrap_or("root"),
                actions: Arc::new(RwLock::new(Vec::new())),
                visibility: Arc::new(Visibility::from_config(ctx.config())?),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_joined_by_dashes() {
        for good in ["create-todo", "list", "v2-export"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Create",
            "create_todo",
            "create--todo",
            "-create",
            "create todo",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn attributes_default_as_backstage_does() {
        let action = || {
            Action::new(
                "a",
                "A",
                "a",
                |_: Value, _: Credentials| async move { Ok(()) },
            )
        };
        assert_eq!(action().attributes(), ActionAttributes::default());
        let read_only = action().read_only(true).attributes();
        assert!(read_only.read_only && !read_only.destructive);
        let kept = action().read_only(true).destructive(true).attributes();
        assert!(kept.destructive);
    }

    #[test]
    fn schemas_are_draft_7() {
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Input {
            name: String,
        }
        let action = Action::new(
            "a",
            "A",
            "a",
            |_: Input, _: Credentials| async move { Ok(1u32) },
        );
        let (input, output) = action.schemas();
        assert_eq!(input["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(input["type"], "object");
        assert_eq!(input["required"], serde_json::json!(["name"]));
        assert_eq!(output["type"], "integer");
    }
}
