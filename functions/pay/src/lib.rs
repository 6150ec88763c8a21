//! `pay`: `GET /api/pay/{id}`, anonymous: the hosted pay page of an invoice. One small HTML
//! document with no external assets (inline style and script, the QR code as inline SVG
//! rendered here): amount, asset, chain, the deposit address with a copy button, a QR code of
//! the EIP-681 URI, a countdown to the expiry and a live status polled from
//! `GET /api/pay/{id}/status` (`aria-live`, so screen readers hear it change).

use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{Html, IntoResponse, Response};
use meshpay_api::{ApiError, AppState, PathId, from_store};
use meshpay_domain::InvoiceId;
use meshpay_payins::views::{InvoiceRenderer, PublicInvoiceView};
use meshpay_shim::{Function, FunctionJson};
use qrcode::QrCode;
use qrcode::render::svg;
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("pay");

/// Nothing but the page's own inline style and script, its status endpoint and inline SVG.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// `GET /api/pay/{id}`.
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, PayApi::openapi)
        .on(Method::GET, pay_page)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(paths(pay_page))]
pub struct PayApi;

#[utoipa::path(
    get,
    path = "/api/pay/{id}",
    tag = "pay",
    params(("id" = String, Path, description = "Invoice id (`inv_…`)", pattern = "^inv_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The pay page", content_type = "text/html"),
        (status = 404, description = "No such invoice", body = meshpay_api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn pay_page(
    State(state): State<AppState>,
    PathId(id): PathId<InvoiceId>,
) -> Result<Response, ApiError> {
    let invoice = state
        .store
        .get_invoice_public(id)
        .await
        .map_err(|e| from_store(e, "invoice", &state.chains))?
        .ok_or_else(|| ApiError::not_found("invoice"))?;
    let view = InvoiceRenderer::new(&state.chains, "").public(&invoice)?;
    let mut response = Html(page(&view)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// The QR code of `text` as an inline SVG; empty when it does not fit a QR code.
pub fn qr_svg(text: &str) -> String {
    QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<svg::Color<'_>>()
                .min_dimensions(220, 220)
                .quiet_zone(true)
                .build()
        })
        // Drop the XML declaration: the SVG is inlined in HTML.
        .map(|svg| match svg.find("<svg") {
            Some(start) => svg[start..].to_owned(),
            None => svg,
        })
        .unwrap_or_default()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn status_text(view: &PublicInvoiceView) -> &'static str {
    use meshpay_payins::views::InvoiceStatusView as S;
    match view.status {
        S::Open => "Waiting for payment",
        S::Pending => "Payment seen, waiting for confirmations",
        S::Paid => "Paid",
        S::Underpaid => "Partially paid",
        S::Overpaid => "Paid (more than asked)",
        S::Expired => "Expired",
        S::PaidLate => "Paid (after expiry)",
        S::Cancelled => "Cancelled",
    }
}

/// The whole page. Every value is escaped; the script reads them from `data-` attributes.
pub fn page(view: &PublicInvoiceView) -> String {
    let status = serde_status(view);
    let expires = view
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pay {amount} {asset}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#111;background:#fff}}
h1{{font-size:1.4rem}} dl{{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem}} dt{{font-weight:600}}
code{{word-break:break-all;font-size:.95rem}} button{{font:inherit;padding:.4rem .8rem;margin-top:.4rem}}
#qr svg{{width:220px;height:220px}} #status{{font-weight:600;padding:.5rem;border:2px solid #333;border-radius:.3rem}}
</style>
</head>
<body>
<main id="invoice" data-id="{id}" data-status="{status}" data-expires="{expires}">
<h1>Pay <span id="amount">{amount}</span> <span id="asset">{asset}</span></h1>
<dl>
<dt>Network</dt><dd id="chain">{chain}</dd>
<dt>Send to</dt><dd><code id="address">{address}</code><br>
<button type="button" id="copy" aria-describedby="address">Copy address</button> <span id="copied" role="status"></span></dd>
<dt>Expires in</dt><dd id="countdown">{expires}</dd>
<dt>Received</dt><dd><span id="received">{received}</span> {asset}</dd>
</dl>
<div id="qr" role="img" aria-label="QR code of the payment request">{qr}</div>
<p>Status: <span id="status" role="status" aria-live="polite" data-status="{status}">{status_text}</span></p>
</main>
<script>
(function () {{
  var root = document.getElementById("invoice");
  var statusEl = document.getElementById("status");
  var texts = {{open: "Waiting for payment", pending: "Payment seen, waiting for confirmations",
    paid: "Paid", underpaid: "Partially paid", overpaid: "Paid (more than asked)",
    expired: "Expired", paid_late: "Paid (after expiry)", cancelled: "Cancelled"}};
  var done = {{paid: 1, overpaid: 1, paid_late: 1, cancelled: 1}};
  var expires = Date.parse(root.dataset.expires);
  document.getElementById("copy").addEventListener("click", function () {{
    var text = document.getElementById("address").textContent;
    var note = document.getElementById("copied");
    if (navigator.clipboard) {{
      navigator.clipboard.writeText(text).then(function () {{ note.textContent = "Copied"; }},
        function () {{ note.textContent = "Select the address to copy it"; }});
    }}
  }});
  function tick() {{
    var left = Math.max(0, Math.floor((expires - Date.now()) / 1000));
    var m = Math.floor(left / 60), s = left % 60;
    document.getElementById("countdown").textContent = left > 0 ? m + " min " + s + " s" : "expired";
  }}
  function show(state) {{
    statusEl.dataset.status = state.status;
    statusEl.textContent = texts[state.status] || state.status;
    document.getElementById("received").textContent = state.amount_received;
  }}
  function poll() {{
    fetch("/api/pay/" + root.dataset.id + "/status", {{headers: {{accept: "application/json"}}}})
      .then(function (r) {{ return r.ok ? r.json() : null; }})
      .then(function (state) {{ if (state) show(state); if (!state || !done[state.status]) setTimeout(poll, 2000); }},
        function () {{ setTimeout(poll, 5000); }});
  }}
  tick(); setInterval(tick, 1000);
  if (!done[root.dataset.status]) setTimeout(poll, 2000);
}})();
</script>
</body>
</html>
"#,
        id = escape(&view.id),
        status = escape(&status),
        expires = escape(&expires),
        amount = escape(&view.amount),
        asset = escape(&view.asset),
        chain = escape(&view.chain),
        address = escape(&view.deposit_address),
        received = escape(&view.amount_received),
        qr = qr_svg(&view.payment_uri),
        status_text = status_text(view),
    )
}

fn serde_status(view: &PublicInvoiceView) -> String {
    serde_json_status(view).unwrap_or_default()
}

fn serde_json_status(view: &PublicInvoiceView) -> Option<String> {
    let value = serde_json::to_value(view.status).ok()?;
    value.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_inline_svg_and_values_are_escaped() {
        let svg = qr_svg("ethereum:0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35@31337?value=1");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<path") || svg.contains("<rect"));
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
