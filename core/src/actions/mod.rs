//! Actions: typed operations a plugin offers to AI agents and to other plugins, as Backstage's
//! `actionsRegistry` and `actions` services do.
//!
//! A plugin declares an action with `#[action]` in its `#[routes]` block (or registers one
//! through [`ActionsRegistry`]); it is then listed at
//! `/api/<pluginId>/.backstage/actions/v1/actions` as `<pluginId>:<name>`, with the JSON Schemas
//! of its input and output, and invoked at `.../actions/<id>/invoke` with the caller's
//! credentials. Backstage's MCP actions backend turns the actions of the plugins in
//! `backend.actions.pluginSources` into MCP tools; [`Actions`] lists and invokes them from Rust.
//!
//! ```
//! use backstage::prelude::*;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct NewTodo {
//!     title: String,
//! }
//!
//! #[derive(serde::Serialize, schemars::JsonSchema)]
//! struct Todo {
//!     id: u64,
//!     title: String,
//! }
//!
//! #[backend_plugin(id = "todo")]
//! pub struct TodoPlugin;
//!
//! #[routes]
//! impl TodoPlugin {
//!     /// Creates a todo item.
//!     #[action(name = "create-todo", title = "Create a todo")]
//!     async fn create_todo(&self, input: NewTodo, _creds: Credentials) -> Result<Todo> {
//!         Ok(Todo { id: 1, title: input.title })
//!     }
//! }
//! # fn main() {}
//! ```

mod attributes;
mod client;
pub(crate) mod endpoints;
mod filter;
mod registry;

pub use attributes::ActionAttributes;
pub use client::{ActionDescription, ActionSchemas, Actions};
pub use registry::{Action, ActionsRegistry};
#[doc(hidden)]
pub use registry::{NoInput, action_input, action_output};

crate::plugin::register!(ActionsRegistry, Actions);
