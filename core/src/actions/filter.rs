//! Which actions a deployment offers: `backend.actions.pluginSources` and
//! `backend.actions.filter`, as Backstage reads them.

use serde::Deserialize;

use super::attributes::ActionAttributes;
use crate::config::RootConfig;
use crate::error::{Error, Result};

/// `backend.actions`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ActionsSection {
    plugin_sources: Option<Vec<String>>,
    #[serde(default)]
    filter: FilterSection,
}

#[derive(Deserialize, Default)]
struct FilterSection {
    #[serde(default)]
    include: Vec<RuleSection>,
    #[serde(default)]
    exclude: Vec<RuleSection>,
}

#[derive(Deserialize)]
struct RuleSection {
    id: Option<String>,
    attributes: Option<AttributesRule>,
}

/// The attributes a rule asks for; an absent one matches anything.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct AttributesRule {
    destructive: Option<bool>,
    read_only: Option<bool>,
    idempotent: Option<bool>,
}

struct Rule {
    id: Option<globset::GlobMatcher>,
    attributes: AttributesRule,
}

impl Rule {
    fn matches(&self, id: &str, attributes: &ActionAttributes) -> bool {
        let wanted = |rule: Option<bool>, actual: bool| rule.is_none_or(|r| r == actual);
        self.id.as_ref().is_none_or(|glob| glob.is_match(id))
            && wanted(self.attributes.destructive, attributes.destructive)
            && wanted(self.attributes.read_only, attributes.read_only)
            && wanted(self.attributes.idempotent, attributes.idempotent)
    }
}

/// The deployment's choice of actions.
pub(crate) struct Visibility {
    plugin_sources: Option<Vec<String>>,
    include: Vec<Rule>,
    exclude: Vec<Rule>,
}

impl Visibility {
    pub(crate) fn from_config(config: &RootConfig) -> Result<Self> {
        let section: ActionsSection = config.get_section("backend.actions")?;
        let rules = |rules: Vec<RuleSection>, key: &str| -> Result<Vec<Rule>> {
            rules
                .into_iter()
                .enumerate()
                .map(|(i, rule)| {
                    let id = rule
                        .id
                        .map(|pattern| {
                            globset::GlobBuilder::new(&pattern)
                                .literal_separator(true)
                                .build()
                                .map(|glob| glob.compile_matcher())
                                .map_err(|e| {
                                    Error::input(format!(
                                        "backend.actions.filter.{key}[{i}].id: '{pattern}' is not a valid pattern: {e}"
                                    ))
                                })
                        })
                        .transpose()?;
                    Ok(Rule {
                        id,
                        attributes: rule.attributes.unwrap_or_default(),
                    })
                })
                .collect()
        };
        Ok(Visibility {
            plugin_sources: section.plugin_sources,
            include: rules(section.filter.include, "include")?,
            exclude: rules(section.filter.exclude, "exclude")?,
        })
    }

    /// No choice: every action of every plugin.
    pub(crate) fn everything() -> Self {
        Visibility {
            plugin_sources: None,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }

    /// The plugins whose actions this deployment lists (`backend.actions.pluginSources`).
    pub(crate) fn sources(&self) -> &[String] {
        self.plugin_sources.as_deref().unwrap_or_default()
    }

    /// Whether plugin `plugin_id` may offer actions: when `pluginSources` is set, only the
    /// plugins it names do.
    pub(crate) fn allows_source(&self, plugin_id: &str) -> bool {
        self.plugin_sources
            .as_ref()
            .is_none_or(|sources| sources.iter().any(|s| s == plugin_id))
    }

    /// Whether the filter lets action `id` through: no exclude rule matches, and an include
    /// rule does when there are any.
    pub(crate) fn allows(&self, id: &str, attributes: &ActionAttributes) -> bool {
        !self.exclude.iter().any(|rule| rule.matches(id, attributes))
            && (self.include.is_empty()
                || self.include.iter().any(|rule| rule.matches(id, attributes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn visibility(actions: serde_json::Value) -> Visibility {
        Visibility::from_config(&RootConfig::from_value(
            json!({ "backend": { "actions": actions } }),
        ))
        .unwrap()
    }

    const WRITE: ActionAttributes = ActionAttributes {
        destructive: true,
        idempotent: false,
        read_only: false,
    };
    const READ: ActionAttributes = ActionAttributes {
        destructive: false,
        idempotent: true,
        read_only: true,
    };

    #[test]
    fn without_config_everything_is_offered() {
        let v = visibility(json!({}));
        assert!(v.allows_source("todo") && v.allows("todo:add", &WRITE));
    }

    #[test]
    fn plugin_sources_name_the_plugins_that_offer_actions() {
        let v = visibility(json!({ "pluginSources": ["catalog", "todo"] }));
        assert!(v.allows_source("todo"));
        assert!(!v.allows_source("other"));
        assert_eq!(v.sources(), ["catalog", "todo"]);
    }

    #[test]
    fn exclude_rules_win_over_include_rules() {
        let v = visibility(json!({ "filter": {
            "include": [{ "id": "todo:*" }, { "attributes": { "readOnly": true } }],
            "exclude": [{ "id": "todo:delete-*" }],
        } }));
        assert!(v.allows("todo:add", &WRITE));
        assert!(!v.allows("todo:delete-all", &WRITE));
        assert!(v.allows("catalog:get", &READ));
        assert!(!v.allows("catalog:refresh", &WRITE));
    }

    #[test]
    fn a_bad_pattern_names_its_key() {
        let config = RootConfig::from_value(
            json!({ "backend": { "actions": { "filter": { "exclude": [{ "id": "[" }] } } } }),
        );
        let message = Visibility::from_config(&config)
            .err()
            .unwrap()
            .message()
            .to_owned();
        assert!(
            message.contains("backend.actions.filter.exclude[0].id"),
            "{message}"
        );
    }
}
