//! The `urlReader` service against local servers that answer as a plain web server, GitHub's
//! API and GitLab's API do: reads, conditional reads, trees, searches, and every refusal
//! (hosts not allowed, redirects off the list, sizes, timeouts, tokens on the wrong host).

use std::time::{Duration, UNIX_EPOCH};

use backstage::prelude::*;
use backstage::testing::wiremock::matchers::{header, header_regex, method, path, query_param};
use backstage::testing::wiremock::{Mock, ResponseTemplate};
use backstage::testing::{MockServer, TestBackend, json, mock, tar_gz};
use backstage::url_reader::{
    ReadTreeOptions, ReadUrlOptions, ReadUrlResponse, Reader, SearchOptions,
};

const TOKEN: &str = "ghp_sekrit-token-value";

fn reader(config: serde_json::Value) -> UrlReader {
    UrlReader::from_config(&RootConfig::from_value(config)).unwrap()
}

fn merged(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    let (Some(a_map), serde_json::Value::Object(b_map)) = (a.as_object_mut(), b) else {
        panic!("objects only");
    };
    for (k, v) in b_map {
        match a_map.get_mut(&k) {
            Some(existing) if existing.is_object() && v.is_object() => {
                *existing = merged(existing.take(), v);
            }
            _ => {
                a_map.insert(k, v);
            }
        }
    }
    a
}

async fn text(response: ReadUrlResponse) -> String {
    String::from_utf8(response.bytes().await.unwrap().to_vec()).unwrap()
}

// --- plain URLs: the fetch reader and backend.reading.allow ---

#[tokio::test]
async fn allowed_urls_are_read_with_their_version() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/catalog-info.yaml"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("kind: Component")
                .insert_header("etag", "\"v1\"")
                .insert_header("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
        )
        .mount(&server)
        .await;
    let reader = reader(server.reading_allow());
    let read = reader
        .read_url(&server.url("/catalog-info.yaml"), ReadUrlOptions::new())
        .await
        .unwrap();
    assert_eq!(read.etag(), Some("\"v1\""));
    assert_eq!(
        read.last_modified_at(),
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    assert_eq!(text(read).await, "kind: Component");
}

#[tokio::test]
async fn bodies_can_be_streamed() {
    use futures_util::StreamExt as _;
    let server = MockServer::start().await;
    let body = "x".repeat(200_000);
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body.clone()))
        .mount(&server)
        .await;
    let read = reader(server.reading_allow())
        .read_url(&server.url("/big"), ReadUrlOptions::new())
        .await
        .unwrap();
    let mut stream = read.stream();
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, body.len());
}

#[tokio::test]
async fn an_unchanged_etag_is_not_modified() {
    let server = MockServer::start().await;
    Mock::given(path("/a.yaml"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    let error = reader(server.reading_allow())
        .read_url(&server.url("/a.yaml"), ReadUrlOptions::new().etag("\"v1\""))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotModified);
}

#[tokio::test]
async fn unchanged_since_a_time_is_not_modified() {
    let server = MockServer::start().await;
    Mock::given(path("/a.yaml"))
        // wiremock splits header values at commas; a date has one
        .and(header_regex(
            "if-modified-since",
            "^Tue, 14 Nov 2023 22:13:20 GMT$",
        ))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let error = reader(server.reading_allow())
        .read_url(
            &server.url("/a.yaml"),
            ReadUrlOptions::new().modified_after(since),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotModified);
}

#[tokio::test]
async fn missing_content_is_not_found() {
    let server = MockServer::start().await;
    let error = reader(server.reading_allow())
        .read_url(&server.url("/nothing"), ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(error.message().contains("404 Not Found"), "{error}");
}

#[tokio::test]
async fn hosts_not_allowed_are_refused_before_any_connection() {
    let server = MockServer::start().await;
    let reader = reader(json!({}));
    let error = reader
        .read_url(&server.url("/a.yaml"), ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAllowed);
    assert!(error.message().contains("backend.reading.allow"), "{error}");
    assert!(server.received_requests().await.unwrap().is_empty());
    for url in ["file:///etc/passwd", "ftp://example.com/x"] {
        let error = reader
            .read_url(url, ReadUrlOptions::new())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotAllowed, "{url}");
    }
    let error = reader
        .read_url("not a url", ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input);
}

#[tokio::test]
async fn allowed_paths_limit_what_is_read() {
    let server = MockServer::start().await;
    Mock::given(path("/public/a"))
        .respond_with(ResponseTemplate::new(200).set_body_string("a"))
        .mount(&server)
        .await;
    let reader = reader(json!({ "backend": { "reading": { "allow": [
        { "host": server.host(), "paths": ["/public"] }
    ] } } }));
    let read = reader
        .read_url(&server.url("/public/a"), ReadUrlOptions::new())
        .await
        .unwrap();
    assert_eq!(text(read).await, "a");
    for refused in ["/private/a", "/public/../private/a", "/publicity"] {
        let error = reader
            .read_url(&server.url(refused), ReadUrlOptions::new())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotAllowed, "{refused}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn redirects_are_checked_against_the_allow_list() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(path("/public/moved"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/public/here"))
        .mount(&server)
        .await;
    Mock::given(path("/public/here"))
        .respond_with(ResponseTemplate::new(200).set_body_string("here"))
        .mount(&server)
        .await;
    Mock::given(path("/public/away"))
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", elsewhere.url("/x").as_str()),
        )
        .mount(&server)
        .await;
    Mock::given(path("/public/up"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/private/x"))
        .mount(&server)
        .await;
    let reader = reader(json!({ "backend": { "reading": { "allow": [
        { "host": server.host(), "paths": ["/public"] }
    ] } } }));
    let read = reader
        .read_url(&server.url("/public/moved"), ReadUrlOptions::new())
        .await
        .unwrap();
    assert_eq!(text(read).await, "here");
    for url in ["/public/away", "/public/up"] {
        let error = reader
            .read_url(&server.url(url), ReadUrlOptions::new())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotAllowed, "{url}: {error}");
    }
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn only_backstages_redirects_are_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/see-other"))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/a"))
        .mount(&server)
        .await;
    let error = reader(server.reading_allow())
        .read_url(&server.url("/see-other"), ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Internal);
    assert!(error.message().contains("303 See Other"), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn endless_redirects_stop() {
    let server = MockServer::start().await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .mount(&server)
        .await;
    let error = reader(server.reading_allow())
        .read_url(&server.url("/loop"), ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert!(error.message().contains("too many redirects"), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}

#[tokio::test]
async fn responses_over_the_size_limit_are_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(2048)))
        .mount(&server)
        .await;
    let config = merged(
        server.reading_allow(),
        json!({ "backend": { "reading": { "maxSize": "1kb" } } }),
    );
    let read = reader(config)
        .read_url(&server.url("/big"), ReadUrlOptions::new())
        .await
        .unwrap();
    let error = read.bytes().await.unwrap_err();
    assert!(
        error.message().contains("backend.reading.maxSize"),
        "{error}"
    );
}

/// A server that answers every connection with `head`, then each of `chunks` after its pause:
/// bodies wiremock cannot send (chunked without a length, stalling halfway).
async fn raw_server(head: &'static str, chunks: Vec<(Duration, Vec<u8>)>) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(head.as_bytes()).await;
                for (pause, chunk) in chunks {
                    tokio::time::sleep(pause).await;
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address.to_string()
}

fn chunk(size: usize) -> Vec<u8> {
    format!("{size:x}\r\n{}\r\n", "x".repeat(size)).into_bytes()
}

#[tokio::test]
async fn streamed_bodies_without_a_length_are_cut_at_the_size_limit() {
    use futures_util::StreamExt as _;
    let chunks = vec![(Duration::ZERO, chunk(1024)); 4];
    let host = raw_server(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        chunks,
    )
    .await;
    let reader = reader(json!({ "backend": { "reading": {
        "allow": [{ "host": host }], "maxSize": 2048,
    } } }));
    let url = format!("http://{host}/big");
    let read = reader.read_url(&url, ReadUrlOptions::new()).await.unwrap();
    let error = read.bytes().await.unwrap_err();
    assert!(
        error.message().contains("backend.reading.maxSize"),
        "{error}"
    );

    let mut stream = reader
        .read_url(&url, ReadUrlOptions::new())
        .await
        .unwrap()
        .stream();
    let mut results = Vec::new();
    while let Some(item) = stream.next().await {
        results.push(item.map(|c| c.len()));
    }
    let received: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    assert!(received <= 2048, "{received}");
    assert!(
        results.last().unwrap().is_err(),
        "the stream ends with the error"
    );
}

#[tokio::test]
async fn a_body_that_stalls_times_out() {
    let chunks = vec![
        (Duration::ZERO, chunk(10)),
        (Duration::from_secs(5), chunk(10)),
    ];
    let host = raw_server(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        chunks,
    )
    .await;
    let reader = reader(json!({ "backend": { "reading": {
        "allow": [{ "host": host }], "timeout": "300ms",
    } } }));
    let read = reader
        .read_url(&format!("http://{host}/slow"), ReadUrlOptions::new())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = read.bytes().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        error.message().contains("backend.reading.timeout"),
        "{error}"
    );
}

#[tokio::test]
async fn slow_servers_time_out() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let config = merged(
        server.reading_allow(),
        json!({ "backend": { "reading": { "timeout": "200ms" } } }),
    );
    let started = std::time::Instant::now();
    let error = reader(config)
        .read_url(&server.url("/slow"), ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        error.message().contains("backend.reading.timeout"),
        "{error}"
    );
}

#[tokio::test]
async fn plain_urls_have_no_trees_and_search_one_file() {
    let server = MockServer::start().await;
    Mock::given(path("/a.yaml"))
        .respond_with(ResponseTemplate::new(200).set_body_string("a"))
        .mount(&server)
        .await;
    let reader = reader(server.reading_allow());
    let error = reader
        .read_tree(&server.url("/"), ReadTreeOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotImplemented);
    let found = reader
        .search(&server.url("/a.yaml"), SearchOptions::new())
        .await
        .unwrap();
    assert_eq!(found.files.len(), 1);
    assert_eq!(found.files[0].content, "a");
    let found = reader
        .search(&server.url("/missing.yaml"), SearchOptions::new())
        .await
        .unwrap();
    assert!(found.files.is_empty());
    let error = reader
        .search(&server.url("/*.yaml"), SearchOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input);
}

#[test]
fn bad_reading_config_names_the_key() {
    let error = UrlReader::from_config(&RootConfig::from_value(json!({
        "backend": { "reading": { "allow": [{ "host": "a.*.com" }] } }
    })))
    .unwrap_err();
    assert!(
        error.message().contains("backend.reading.allow[0].host"),
        "{error}"
    );
    let error = UrlReader::from_config(&RootConfig::from_value(json!({
        "integrations": { "github": [{ "host": "ghe.example.com" }] }
    })))
    .unwrap_err();
    assert!(
        error.message().contains("integrations.github[0]"),
        "{error}"
    );
}

// --- GitHub ---

fn github(server: &MockServer, token: Option<&str>) -> UrlReader {
    reader(server.github_integration(token))
}

#[tokio::test]
async fn github_files_come_from_the_contents_api_with_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/contents/docs/catalog-info.yaml"))
        .and(query_param("ref", "main"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/vnd.github.v3.raw"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("kind: Component")
                .insert_header("etag", "\"sha-1\""),
        )
        .expect(1)
        .mount(&server)
        .await;
    let read = github(&server, Some(TOKEN))
        .read_url(
            &server.url("/o/r/blob/main/docs/catalog-info.yaml"),
            ReadUrlOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(read.etag(), Some("\"sha-1\""));
    assert_eq!(text(read).await, "kind: Component");
}

#[tokio::test]
async fn github_files_without_a_token_come_from_the_raw_host() {
    let server = MockServer::start().await;
    Mock::given(path("/raw/o/r/main/a.yaml"))
        .respond_with(ResponseTemplate::new(200).set_body_string("a"))
        .expect(1)
        .mount(&server)
        .await;
    let read = github(&server, None)
        .read_url(&server.url("/o/r/blob/main/a.yaml"), ReadUrlOptions::new())
        .await
        .unwrap();
    assert_eq!(text(read).await, "a");
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn github_answers_304_404_and_rate_limits_as_backstage_reports_them() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/o/r/contents/same.yaml"))
        .and(header("if-none-match", "\"e\""))
        .respond_with(ResponseTemplate::new(304))
        .mount(&server)
        .await;
    Mock::given(path("/repos/o/r/contents/limited.yaml"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .set_body_string("{\"message\":\"API rate limit exceeded\"}"),
        )
        .mount(&server)
        .await;
    let reader = github(&server, Some(TOKEN));
    let url = |p: &str| server.url(&format!("/o/r/blob/main/{p}"));
    let error = reader
        .read_url(&url("same.yaml"), ReadUrlOptions::new().etag("\"e\""))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotModified);
    let error = reader
        .read_url(&url("gone.yaml"), ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(error.message().starts_with("Request failed for"), "{error}");
    let error = reader
        .read_url(&url("limited.yaml"), ReadUrlOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Internal);
    assert!(error.message().contains("(rate limit exceeded)"), "{error}");
    assert!(!error.message().contains(TOKEN));
    assert!(!format!("{error:?}").contains(TOKEN));
}

async fn mount_github_tree(server: &MockServer, sha: &str) {
    Mock::given(path("/repos/o/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "default_branch": "main" })))
        .mount(server)
        .await;
    Mock::given(path("/repos/o/r/commits/main/status"))
        .and(query_param("per_page", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sha": sha,
            "repository": { "archive_url": "https://attacker.example/{archive_format}{/ref}" },
        })))
        .mount(server)
        .await;
    let archive = tar_gz(
        &format!("o-r-{sha}"),
        &[
            ("README.md", "readme"),
            ("docs/index.md", "# Docs"),
            ("docs/guide/setup.md", "setup"),
            ("catalog/a.yaml", "a"),
            ("catalog/deep/b.yaml", "b"),
        ],
    );
    Mock::given(path(format!("/repos/o/r/tarball/{sha}")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(archive))
        .mount(server)
        .await;
}

#[tokio::test]
async fn github_trees_come_from_the_commits_tarball() {
    let server = MockServer::start().await;
    mount_github_tree(&server, "abc123").await;
    let reader = github(&server, Some(TOKEN));
    let tree = reader
        .read_tree(&server.url("/o/r/tree/main/docs"), ReadTreeOptions::new())
        .await
        .unwrap();
    assert_eq!(tree.etag, "abc123");
    let mut paths: Vec<_> = tree.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["guide/setup.md", "index.md"]);
    assert_eq!(tree.file("index.md").unwrap().content, "# Docs");

    // the default branch, and a filter
    let tree = reader
        .read_tree(
            &server.url("/o/r"),
            ReadTreeOptions::new().filter(|path, _| path.ends_with(".yaml")),
        )
        .await
        .unwrap();
    assert_eq!(tree.files.len(), 2);
}

#[tokio::test]
async fn an_unchanged_github_tree_is_not_downloaded() {
    let server = MockServer::start().await;
    mount_github_tree(&server, "abc123").await;
    let error = github(&server, Some(TOKEN))
        .read_tree(
            &server.url("/o/r/tree/main/docs"),
            ReadTreeOptions::new().etag("abc123"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotModified);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| !r.url.path().contains("tarball")));
}

#[tokio::test]
async fn github_searches_match_globs_in_the_path() {
    let server = MockServer::start().await;
    mount_github_tree(&server, "abc123").await;
    let reader = github(&server, Some(TOKEN));
    let found = reader
        .search(
            &server.url("/o/r/blob/main/catalog/**/*.yaml"),
            SearchOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(found.etag, "abc123");
    let mut urls: Vec<_> = found.files.iter().map(|f| f.url.clone()).collect();
    urls.sort();
    assert_eq!(
        urls,
        [
            server.url("/o/r/blob/main/catalog/a.yaml"),
            server.url("/o/r/blob/main/catalog/deep/b.yaml"),
        ]
    );
    let error = reader
        .search(
            &server.url("/o/r/blob/main/catalog/*.yaml"),
            SearchOptions::new().etag("abc123"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotModified);
}

#[tokio::test]
async fn tokens_do_not_follow_redirects_to_other_hosts() {
    let server = MockServer::start().await;
    let codeload = MockServer::start().await;
    Mock::given(path("/repos/o/r/commits/main/status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "sha": "s1" })))
        .mount(&server)
        .await;
    Mock::given(path("/repos/o/r/tarball/s1"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", codeload.url("/o/r/legacy.tar.gz/s1").as_str()),
        )
        .mount(&server)
        .await;
    Mock::given(path("/o/r/legacy.tar.gz/s1"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tar_gz("o-r-s1", &[("a.md", "a")])))
        .mount(&codeload)
        .await;
    let tree = github(&server, Some(TOKEN))
        .read_tree(&server.url("/o/r/tree/main"), ReadTreeOptions::new())
        .await
        .unwrap();
    assert_eq!(tree.files.len(), 1);
    let to_api = server.received_requests().await.unwrap();
    assert!(
        to_api
            .iter()
            .all(|r| r.headers.get("authorization").is_some())
    );
    let to_codeload = codeload.received_requests().await.unwrap();
    assert_eq!(to_codeload.len(), 1);
    assert!(to_codeload[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn github_urls_that_climb_out_of_the_repository_are_refused() {
    let server = MockServer::start().await;
    let error = github(&server, Some(TOKEN))
        .read_url(
            &server.url("/o/r/blob/main/docs/..%2F..%2Fsecret"),
            ReadUrlOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn tokens_never_show_in_debug_output() {
    let server = MockServer::start().await;
    let reader = reader(merged(
        server.github_integration(Some(TOKEN)),
        server.gitlab_integration(Some(TOKEN)),
    ));
    let shown = format!("{reader:?}");
    assert!(shown.contains("authed=true"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

// --- GitLab ---

#[tokio::test]
async fn gitlab_files_come_from_the_files_api() {
    let server = MockServer::start().await;
    Mock::given(path(
        "/api/v4/projects/group%2Fsub%2Fproj/repository/files/docs%2Fa%20b.md/raw",
    ))
    .and(query_param("ref", "main"))
    .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
    .respond_with(
        ResponseTemplate::new(200)
            .set_body_string("hello")
            .insert_header("etag", "\"g1\""),
    )
    .expect(1)
    .mount(&server)
    .await;
    Mock::given(path(
        "/api/v4/projects/group%2Fsub%2Fproj/repository/files/same.md/raw",
    ))
    .and(header("if-none-match", "\"g1\""))
    .respond_with(ResponseTemplate::new(304))
    .mount(&server)
    .await;
    let reader = reader(server.gitlab_integration(Some(TOKEN)));
    let read = reader
        .read_url(
            &server.url("/group/sub/proj/-/blob/main/docs/a%20b.md"),
            ReadUrlOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(read.etag(), Some("\"g1\""));
    assert_eq!(text(read).await, "hello");
    let error = reader
        .read_url(
            &server.url("/group/sub/proj/-/blob/main/same.md"),
            ReadUrlOptions::new().etag("\"g1\""),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotModified);
    let error = reader
        .read_url(
            &server.url("/group/sub/proj/-/blob/main/gone.md"),
            ReadUrlOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

async fn mount_gitlab_tree(server: &MockServer) {
    Mock::given(path("/api/v4/projects/group%2Fproj"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "default_branch": "main" })))
        .mount(server)
        .await;
    Mock::given(path("/api/v4/projects/group%2Fproj/repository/commits"))
        .and(query_param("ref_name", "main"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{ "id": "c0ffee" }])))
        .mount(server)
        .await;
    let archive = tar_gz(
        "proj-c0ffee",
        &[
            ("docs/index.md", "# Docs"),
            ("catalog/a.yaml", "a"),
            ("catalog/b.txt", "b"),
        ],
    );
    Mock::given(path("/api/v4/projects/group%2Fproj/repository/archive"))
        .and(query_param("sha", "c0ffee"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(archive))
        .mount(server)
        .await;
}

#[tokio::test]
async fn gitlab_trees_and_searches_come_from_the_archive_api() {
    let server = MockServer::start().await;
    mount_gitlab_tree(&server).await;
    let reader = reader(server.gitlab_integration(Some(TOKEN)));
    let tree = reader
        .read_tree(
            &server.url("/group/proj/-/tree/main/docs"),
            ReadTreeOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(tree.etag, "c0ffee");
    assert_eq!(tree.files.len(), 1);
    assert_eq!(tree.files[0].path, "index.md");

    let error = reader
        .read_tree(
            &server.url("/group/proj"),
            ReadTreeOptions::new().etag("c0ffee"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotModified);

    let found = reader
        .search(
            &server.url("/group/proj/-/blob/main/catalog/*.yaml"),
            SearchOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(found.etag, "c0ffee");
    let urls: Vec<_> = found.files.iter().map(|f| f.url.clone()).collect();
    assert_eq!(urls, [server.url("/group/proj/-/blob/main/catalog/a.yaml")]);
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("authorization").is_some())
    );
}

// --- the service in a backend ---

/// Reads whatever URL it is asked for.
#[backend_plugin(id = "reading")]
pub struct Reading {
    #[inject]
    reader: UrlReader,
}

#[derive(serde::Deserialize)]
struct Target {
    url: String,
}

#[routes]
impl Reading {
    #[route(get, "/read")]
    async fn read(&self, Query(target): Query<Target>, _c: Credentials) -> Result<String> {
        let body = self
            .reader
            .read_url(&target.url, ReadUrlOptions::new())
            .await?
            .bytes()
            .await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

fn read_path(url: &str) -> String {
    format!(
        "/api/reading/read?url={}",
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    )
}

#[tokio::test]
async fn plugins_inject_the_reader_configured_by_the_operator() {
    let server = MockServer::start().await;
    Mock::given(path("/a.yaml"))
        .respond_with(ResponseTemplate::new(200).set_body_string("from the server"))
        .mount(&server)
        .await;
    let backend = TestBackend::builder()
        .plugin::<Reading>()
        .config(server.reading_allow())
        .start()
        .await
        .unwrap();
    let res = backend
        .get(&read_path(&server.url("/a.yaml")))
        .credentials(mock::service("plugin:catalog"))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "from the server");
    let res = backend
        .get(&read_path("https://example.com/a.yaml"))
        .credentials(mock::service("plugin:catalog"))
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.error().0, "NotAllowedError");
}

#[tokio::test]
async fn the_mock_reader_serves_files_from_memory() {
    let files = mock::url_reader().with_file("https://example.com/a.yaml", "in memory");
    let backend = TestBackend::builder()
        .plugin::<Reading>()
        .service(files.url_reader())
        .start()
        .await
        .unwrap();
    let creds = mock::service("plugin:catalog");
    let res = backend
        .get(&read_path("https://example.com/a.yaml"))
        .credentials(creds.clone())
        .send()
        .await;
    assert_eq!(res.text(), "in memory");
    files.set_file("https://example.com/a.yaml", "changed");
    let res = backend
        .get(&read_path("https://example.com/a.yaml"))
        .credentials(creds.clone())
        .send()
        .await;
    assert_eq!(res.text(), "changed");
    let res = backend
        .get(&read_path("https://example.com/b.yaml"))
        .credentials(creds)
        .send()
        .await;
    assert_eq!(res.status(), 404);
}

/// A reader for `memo:` URLs that a linked crate adds, asked before the built-in readers.
#[service(scope = "root", id = "tests.memoReader", provides = dyn Reader)]
#[derive(Clone, Default)]
pub struct MemoReader;

impl Reader for MemoReader {
    fn handles(&self, url: &url::Url) -> bool {
        url.scheme() == "memo"
    }

    fn read_url<'a>(
        &'a self,
        url: &'a url::Url,
        _options: &'a ReadUrlOptions,
    ) -> backstage::plugin::BoxFuture<'a, Result<ReadUrlResponse>> {
        Box::pin(async move { Ok(ReadUrlResponse::from_bytes(format!("memo {}", url.path()))) })
    }
}

#[tokio::test]
async fn readers_for_other_providers_are_services() {
    let backend = TestBackend::builder()
        .plugin::<Reading>()
        .start()
        .await
        .unwrap();
    let res = backend
        .get(&read_path("memo:hello"))
        .credentials(mock::service("plugin:catalog"))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "memo hello");
}
