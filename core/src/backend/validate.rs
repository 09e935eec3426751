//! The checks that only the linked set of crates can decide, run before any plugin
//! initialises and reported together.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};

use super::boot::module_order;
use crate::error::{Error, Result};
use crate::plugin::registry::routes_of;
use crate::plugin::{
    ExtensionPointRegistration, ModuleRegistration, Override, OverrideRegistration,
    PluginRegistration, RoutesRegistration, ServiceRegistration,
};

/// Everything the start-up checks look at.
pub(crate) struct Selection<'a> {
    pub(crate) plugins: &'a [&'static PluginRegistration],
    pub(crate) modules: &'a [&'static ModuleRegistration],
    pub(crate) services: &'a [&'static ServiceRegistration],
    pub(crate) extension_points: &'a [&'static ExtensionPointRegistration],
    /// Replacements given to the builder: service, replacement, whether it may be replaced.
    pub(crate) code_overrides: &'a [(TypeId, Override, bool)],
    pub(crate) linked_overrides: &'a [&'static OverrideRegistration],
}

/// Checks the selection; one error lists every problem. Returns the service replacements.
pub(crate) fn validate(selection: &Selection<'_>) -> Result<HashMap<TypeId, Override>> {
    let plugins = selection.plugins;
    let blocks: Vec<Vec<&'static RoutesRegistration>> =
        plugins.iter().map(|p| routes_of((p.type_id)())).collect();
    let mut problems = duplicate_plugins(plugins);
    for (plugin, blocks) in plugins.iter().zip(&blocks) {
        problems.extend(route_problems(plugin, blocks));
    }
    problems.extend(module_problems(selection));
    problems.extend(service_cycles(selection.services));
    let (overrides, override_problems) = overrides(selection);
    problems.extend(override_problems);
    if problems.is_empty() {
        return Ok(overrides);
    }
    let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    Err(Error::internal(format!(
        "the backend cannot start; {} problem(s) with the linked plugins and services:\n{}",
        problems.len(),
        list.join("\n")
    )))
}

fn module_problems(selection: &Selection<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(&str, &str), &ModuleRegistration> = BTreeMap::new();
    for module in selection.modules {
        if !selection.plugins.iter().any(|p| p.id == module.plugin_id) {
            problems.push(format!(
                "module '{}' ({} at {}) extends plugin '{}', which is not part of this backend; add the plugin (link its crate) or remove the module",
                module.module_id,
                (module.type_name)(),
                module.location(),
                module.plugin_id
            ));
        }
        if let Some(first) = seen.get(&(module.plugin_id, module.module_id)) {
            problems.push(format!(
                "plugin '{}' has two modules with id '{}': at {} and at {}; give each module its own id",
                module.plugin_id,
                module.module_id,
                first.location(),
                module.location()
            ));
        } else {
            seen.insert((module.plugin_id, module.module_id), module);
        }
    }
    for plugin in selection.plugins {
        if let Err(stuck) = module_order(plugin.id, selection.modules, selection.extension_points) {
            let names: Vec<String> = stuck
                .iter()
                .map(|m| format!("'{}' at {}", m.module_id, m.location()))
                .collect();
            problems.push(format!(
                "modules of plugin '{}' wait on each other's extension points in a cycle: {}; a module cannot use an extension point of a module that uses one of its own",
                plugin.id,
                names.join(", ")
            ));
        }
    }
    problems
}

/// At most one replacement per service, and none for services that cannot be replaced.
fn overrides(selection: &Selection<'_>) -> (HashMap<TypeId, Override>, Vec<String>) {
    let mut by_service: BTreeMap<&str, Vec<(TypeId, Override, bool)>> = BTreeMap::new();
    for (type_id, replacement, overridable) in selection.code_overrides {
        by_service.entry(replacement.service).or_default().push((
            *type_id,
            replacement.clone(),
            *overridable,
        ));
    }
    for registration in selection.linked_overrides {
        let create = registration.create;
        let replacement = Override {
            service: registration.service_id,
            factory: std::sync::Arc::new(move |ctx| create(ctx)),
            location: format!("{}:{}", registration.file, registration.line),
        };
        by_service
            .entry(registration.service_id)
            .or_default()
            .push((
                (registration.service)(),
                replacement,
                registration.overridable,
            ));
    }
    let mut problems = Vec::new();
    let mut result = HashMap::new();
    for (service, replacements) in by_service {
        let places: Vec<&str> = replacements.iter().map(|r| r.1.location.as_str()).collect();
        if replacements.iter().any(|r| !r.2) {
            problems.push(format!(
                "service '{service}' cannot be replaced (at {}); remove the replacement",
                places.join(", ")
            ));
        } else if replacements.len() > 1 {
            problems.push(format!(
                "service '{service}' is replaced {} times: at {}; keep one replacement",
                replacements.len(),
                places.join(" and at ")
            ));
        } else if let Some((type_id, replacement, _)) = replacements.into_iter().next() {
            result.insert(type_id, replacement);
        }
    }
    (result, problems)
}

fn duplicate_plugins(plugins: &[&'static PluginRegistration]) -> Vec<String> {
    let mut by_id: BTreeMap<&str, Vec<&PluginRegistration>> = BTreeMap::new();
    for plugin in plugins {
        by_id.entry(plugin.id).or_default().push(plugin);
    }
    by_id
        .into_iter()
        .filter(|(_, list)| list.len() > 1)
        .map(|(id, list)| {
            let places: Vec<String> = list
                .iter()
                .map(|p| format!("{} at {}", (p.type_name)(), p.location()))
                .collect();
            format!(
                "plugin id '{id}' is declared by {} plugins: {}; give each plugin its own id",
                list.len(),
                places.join(", ")
            )
        })
        .collect()
}

fn route_problems(plugin: &PluginRegistration, blocks: &[&RoutesRegistration]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: HashMap<(&str, &str), String> = HashMap::new();
    for block in blocks {
        for route in block.routes {
            let at = format!("{}:{}", route.file, route.line);
            if let Some(first) = seen.get(&(route.method, route.path)) {
                problems.push(format!(
                    "plugin '{}' declares the route {} {} twice: at {first} and at {at}; remove one",
                    plugin.id, route.method, route.path
                ));
            } else {
                seen.insert((route.method, route.path), at);
            }
        }
    }
    let inits: Vec<String> = blocks
        .iter()
        .filter_map(|b| b.init.as_ref())
        .map(|i| format!("{} at {}:{}", i.name, i.file, i.line))
        .collect();
    if inits.len() > 1 {
        problems.push(format!(
            "plugin '{}' has {} #[init] functions ({}); a plugin has at most one",
            plugin.id,
            inits.len(),
            inits.join(", ")
        ));
    }
    problems
}

/// Every cycle among service dependencies, each reported once.
fn service_cycles(services: &[&ServiceRegistration]) -> Vec<String> {
    let by_id: HashMap<&str, &ServiceRegistration> = services.iter().map(|s| (s.id, *s)).collect();
    let mut problems = Vec::new();
    let mut reported: Vec<Vec<&str>> = Vec::new();
    // 0 = unvisited, 1 = on the current path, 2 = done
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut ids: Vec<&str> = by_id.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let mut path = Vec::new();
        visit(
            id,
            &by_id,
            &mut state,
            &mut path,
            &mut |cycle: &[&'static str]| {
                let mut key = cycle.to_vec();
                key.sort_unstable();
                if !reported.contains(&key) {
                    reported.push(key);
                    let places: Vec<String> = cycle
                        .iter()
                        .filter_map(|id| by_id.get(id))
                        .map(|s| format!("{} at {}:{}", s.id, s.file, s.line))
                        .collect();
                    let mut names = cycle.to_vec();
                    names.push(cycle[0]);
                    problems.push(format!(
                    "services depend on each other in a cycle: {} ({}); break the cycle by removing one dependency",
                    names.join(" -> "),
                    places.join(", ")
                ));
                }
            },
        );
    }
    problems
}

fn visit<'a>(
    id: &'static str,
    by_id: &HashMap<&str, &'a ServiceRegistration>,
    state: &mut HashMap<&'static str, u8>,
    path: &mut Vec<&'static str>,
    report: &mut dyn FnMut(&[&'static str]),
) {
    match state.get(id).copied().unwrap_or(0) {
        2 => return,
        1 => {
            if let Some(start) = path.iter().position(|p| *p == id) {
                report(&path[start..]);
            }
            return;
        }
        _ => {}
    }
    state.insert(id, 1);
    path.push(id);
    if let Some(service) = by_id.get(id) {
        for dep in service.dependencies {
            visit(dep, by_id, state, path, report);
        }
    }
    path.pop();
    state.insert(id, 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(
        id: &'static str,
        dependencies: &'static [&'static str],
    ) -> &'static ServiceRegistration {
        Box::leak(Box::new(ServiceRegistration {
            id,
            root: true,
            dependencies,
            file: "src/x.rs",
            line: 1,
            eager: None,
        }))
    }

    #[test]
    fn cycles_are_found_once_each() {
        let services = [
            service("a", &["b"]),
            service("b", &["c"]),
            service("c", &["a"]),
            service("d", &["d"]),
            service("e", &["a"]),
        ];
        let problems = service_cycles(&services);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("a -> b -> c -> a"), "{}", problems[0]);
        assert!(problems[0].contains("a at src/x.rs:1"), "{}", problems[0]);
        assert!(problems[1].contains("d -> d"), "{}", problems[1]);
    }

    #[test]
    fn an_acyclic_graph_passes() {
        let services = [
            service("a", &["b", "c"]),
            service("b", &["c"]),
            service("c", &[]),
        ];
        assert!(service_cycles(&services).is_empty());
    }

    #[test]
    fn the_core_services_have_no_cycle() {
        assert!(service_cycles(&crate::plugin::registry::linked_services()).is_empty());
        assert!(
            crate::plugin::registry::linked_services()
                .iter()
                .any(|s| s.id == "core.logger")
        );
    }
}
