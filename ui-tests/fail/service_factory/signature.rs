use backstage::prelude::*;

#[service_factory]
fn user_info(config: RootConfig) -> Result<UserInfo> {
    let _ = config;
    Ok(UserInfo::default())
}

#[service_factory]
async fn nothing(#[inject] config: RootConfig) {
    let _ = config;
}

fn main() {}
