//! The endpoints Backstage's scheduler gives every plugin, behind the plugin's default auth
//! policy (the backend guards them): the task list and the manual trigger.

use axum::Router;
use axum::response::IntoResponse;

use super::Scheduler;
use crate::plugin::AuthPolicyKind;

/// What the router serves, for the route table: method, path below the plugin, policy.
pub(crate) const ENDPOINTS: &[(&str, &str, AuthPolicyKind)] = &[
    (
        "GET",
        "/.backstage/scheduler/v1/tasks",
        AuthPolicyKind::Default,
    ),
    (
        "POST",
        "/.backstage/scheduler/v1/tasks/{id}/trigger",
        AuthPolicyKind::Default,
    ),
];

/// `GET /.backstage/scheduler/v1/tasks` lists the plugin's tasks; `POST
/// /.backstage/scheduler/v1/tasks/{id}/trigger` runs one now (404 unknown, 409 running).
pub(crate) fn router(scheduler: Scheduler) -> Router {
    let list = scheduler.clone();
    Router::new()
        .route(
            "/.backstage/scheduler/v1/tasks",
            axum::routing::get(move || {
                let list = list.clone();
                async move {
                    match list.describe_tasks().await {
                        Ok(tasks) => {
                            crate::http::Json(serde_json::json!({ "tasks": tasks })).into_response()
                        }
                        Err(e) => e.into_response(),
                    }
                }
            }),
        )
        .route(
            "/.backstage/scheduler/v1/tasks/{id}/trigger",
            axum::routing::post(
                move |axum::extract::Path(id): axum::extract::Path<String>| {
                    let scheduler = scheduler.clone();
                    async move {
                        match scheduler.trigger_task(&id).await {
                            Ok(()) => axum::http::StatusCode::OK.into_response(),
                            Err(e) => e.into_response(),
                        }
                    }
                },
            ),
        )
}
