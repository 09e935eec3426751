//! Conditions: what a conditional decision asks of a resource, as Backstage's permission
//! framework writes them (`allOf`, `anyOf`, `not`, and rules with params).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A tree of criteria over conditions of type `T`: Backstage's `PermissionCriteria`.
///
/// ```
/// use backstage::permissions::{PermissionCondition, PermissionCriteria};
///
/// let criteria: PermissionCriteria<PermissionCondition> = serde_json::from_value(serde_json::json!({
///     "anyOf": [
///         { "rule": "is-author", "resourceType": "todo-item", "params": { "author": "user:default/ada" } },
///         { "not": { "rule": "is-done", "resourceType": "todo-item" } }
///     ]
/// })).unwrap();
/// assert!(matches!(criteria, PermissionCriteria::AnyOf { .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PermissionCriteria<T> {
    /// Every criterion holds.
    AllOf {
        /// The criteria.
        #[serde(rename = "allOf")]
        all_of: Vec<PermissionCriteria<T>>,
    },
    /// At least one criterion holds.
    AnyOf {
        /// The criteria.
        #[serde(rename = "anyOf")]
        any_of: Vec<PermissionCriteria<T>>,
    },
    /// The criterion does not hold.
    Not {
        /// The criterion.
        not: Box<PermissionCriteria<T>>,
    },
    /// A single condition.
    Condition(T),
}

/// One condition: a rule of a resource type, with its params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionCondition {
    /// The rule's name.
    pub rule: String,
    /// The resource type the rule belongs to.
    pub resource_type: String,
    /// The rule's params (none is `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
}

impl<T> PermissionCriteria<T> {
    /// Maps every condition with `f`, keeping the tree; the first error stops it.
    pub fn try_map<U>(&self, f: &mut impl FnMut(&T) -> Result<U>) -> Result<PermissionCriteria<U>> {
        Ok(match self {
            PermissionCriteria::AllOf { all_of } => PermissionCriteria::AllOf {
                all_of: all_of.iter().map(|c| c.try_map(f)).collect::<Result<_>>()?,
            },
            PermissionCriteria::AnyOf { any_of } => PermissionCriteria::AnyOf {
                any_of: any_of.iter().map(|c| c.try_map(f)).collect::<Result<_>>()?,
            },
            PermissionCriteria::Not { not } => PermissionCriteria::Not {
                not: Box::new(not.try_map(f)?),
            },
            PermissionCriteria::Condition(condition) => {
                PermissionCriteria::Condition(f(condition)?)
            }
        })
    }

    /// Whether the criteria hold, `holds` deciding each condition.
    pub fn evaluate(&self, holds: &mut impl FnMut(&T) -> Result<bool>) -> Result<bool> {
        match self {
            PermissionCriteria::AllOf { all_of } => {
                for criterion in all_of {
                    if !criterion.evaluate(holds)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            PermissionCriteria::AnyOf { any_of } => {
                for criterion in any_of {
                    if criterion.evaluate(holds)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            PermissionCriteria::Not { not } => Ok(!not.evaluate(holds)?),
            PermissionCriteria::Condition(condition) => holds(condition),
        }
    }

    /// Refuses empty `allOf` and `anyOf` lists, as Backstage's schema does.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            PermissionCriteria::AllOf { all_of: list }
            | PermissionCriteria::AnyOf { any_of: list } => {
                if list.is_empty() {
                    return Err(Error::input(
                        "conditions: allOf and anyOf need at least one criterion",
                    ));
                }
                list.iter().try_for_each(PermissionCriteria::check)
            }
            PermissionCriteria::Not { not } => not.check(),
            PermissionCriteria::Condition(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> PermissionCriteria<PermissionCondition> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn criteria_evaluate_as_backstage_applies_them() {
        let criteria = parse(json!({"allOf": [
            {"rule": "a", "resourceType": "t"},
            {"not": {"anyOf": [{"rule": "b", "resourceType": "t"}, {"rule": "c", "resourceType": "t"}]}}
        ]}));
        let with = |truths: &'static [&'static str]| {
            criteria
                .evaluate(&mut |c: &PermissionCondition| Ok(truths.contains(&c.rule.as_str())))
                .unwrap()
        };
        assert!(with(&["a"]));
        assert!(!with(&["a", "c"]));
        assert!(!with(&[]));
        assert!(criteria.check().is_ok());
        assert!(parse(json!({"anyOf": []})).check().is_err());
    }

    #[test]
    fn a_condition_round_trips() {
        let value =
            json!({"rule": "is-author", "resourceType": "todo-item", "params": {"author": "x"}});
        assert_eq!(serde_json::to_value(parse(value.clone())).unwrap(), value);
    }
}
