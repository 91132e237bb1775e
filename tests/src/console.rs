//! A browser-less client of the control plane's web console: keeps the console's cookies,
//! follows no redirect (tests look at them), and reads the CSRF token out of pages.

use std::collections::BTreeMap;

/// One answer of the console.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// Where a redirect points.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of the first `name="_csrf"` hidden field.
    pub fn csrf(&self) -> Option<String> {
        field_value(&self.body, "_csrf")
    }
}

/// The `value` of the first input named `name` in `html`.
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// A console user agent.
#[derive(Debug)]
pub struct Console {
    http: reqwest::Client,
    pub base: String,
    cookies: BTreeMap<String, String>,
    /// The session's form token, once logged in.
    pub csrf: String,
}

impl Console {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            cookies: BTreeMap::new(),
            csrf: String::new(),
        })
    }

    /// The `Cookie` header this agent sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> anyhow::Result<Page> {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("cookie", self.cookie_header())
        };
        let response = request.send().await?;
        for set in response.headers().get_all("set-cookie") {
            let Some((pair, _)) = set.to_str()?.split_once(';') else {
                continue;
            };
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || set.to_str()?.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await?,
        })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Page> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// A form POST as a browser sends it (with this host as `Origin`).
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Page> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .form(form);
        self.send(request).await
    }

    /// A form POST carrying the session's CSRF token.
    pub async fn submit(&mut self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Page> {
        let csrf = self.csrf.clone();
        let mut fields = vec![("_csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    /// Logs in with `token`; the answer to the login POST.
    pub async fn login(&mut self, token: &str) -> anyhow::Result<Page> {
        let form = self.get("/console/login").await?;
        let csrf = form.csrf().unwrap_or_default();
        let answer = self
            .post(
                "/console/login",
                &[("_csrf", &csrf), ("token", token), ("next", "/console/")],
            )
            .await?;
        if answer.status == 303 {
            let home = self.get("/console/").await?;
            self.csrf = home.csrf().unwrap_or_default();
        }
        Ok(answer)
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }
}
