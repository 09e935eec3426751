//! The fetch reader: plain `http(s)` URLs that `backend.reading.allow` lists, read without
//! credentials. Every redirect hop must be on the list too.

use url::Url;

use crate::error::{Error, Result};
use crate::plugin::BoxFuture;

use super::Reader;
use super::allow::AllowList;
use super::response::{ReadUrlOptions, ReadUrlResponse};
use super::transport::{Transport, conditional_headers, status_error, status_text};

/// Reads allowed plain URLs.
pub(crate) struct FetchReader {
    allow: AllowList,
    transport: Transport,
}

impl FetchReader {
    pub(crate) fn new(allow: AllowList, transport: Transport) -> Self {
        FetchReader { allow, transport }
    }
}

impl Reader for FetchReader {
    fn handles(&self, url: &Url) -> bool {
        self.allow.allows(url)
    }

    fn read_url<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadUrlOptions,
    ) -> BoxFuture<'a, Result<ReadUrlResponse>> {
        Box::pin(async move {
            let check = |hop: &Url| {
                if self.allow.allows(hop) {
                    Ok(())
                } else {
                    Err(Error::not_allowed(format!(
                        "{url} redirected to {hop}, which backend.reading.allow does not list"
                    )))
                }
            };
            let response = self
                .transport
                .get(url.clone(), conditional_headers(options), None, &check)
                .await?;
            let status = response.status();
            if !status.is_success() {
                let message = format!("could not read {url}, {}", status_text(status));
                return Err(status_error(status, message));
            }
            Ok(self.transport.read_url_response(url, response))
        })
    }

    fn describe(&self) -> String {
        "fetch{}".to_owned()
    }
}
