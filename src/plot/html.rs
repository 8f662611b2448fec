//! A small builder for self-contained HTML report pages: sections with a table of contents,
//! tables, figures (embedded as data URIs or linked relatively), notes and Markdown blocks.
//! Everything is escaped; the page needs no network (system font stack, inline CSS).

use base64::Engine;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// Escapes prose for HTML and shows `code` spans (between backticks) as `<code>`, so no
/// backtick appears literally on the page; an unpaired backtick stays as it is.
pub fn inline(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return escape(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(p));
        } else {
            out.push_str(&escape(p));
        }
    }
    out
}

/// Plain text without code backticks (for `<title>` and `alt`).
pub fn plain(s: &str) -> String {
    escape(&s.replace('`', ""))
}

/// A `data:` URI holding `bytes` of the given MIME type.
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The MIME type of an image file name (`.png`, `.svg`, `.jpg`), if it is one.
pub fn image_mime(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".png") {
        Some("image/png")
    } else if lower.ends_with(".svg") {
        Some("image/svg+xml")
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        Some("image/jpeg")
    } else {
        None
    }
}

/// Markdown (CommonMark plus tables) to HTML. Raw HTML in the source is shown as text, so
/// tokens such as `<sos>` stay visible and nothing executes.
pub fn markdown(md: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser};
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES).map(|ev| match ev {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, parser);
    out
}

/// Whether a table cell holds a number (right-aligned).
fn is_numeric(s: &str) -> bool {
    let t = s.trim().trim_end_matches(['x', '×', '%']);
    !t.is_empty() && t.parse::<f64>().is_ok()
}

/// One HTML page under construction.
pub struct Page {
    title: String,
    subtitle: String,
    toc: Vec<(String, String)>,
    body: String,
}

impl Page {
    pub fn new(title: &str, subtitle: &str) -> Self {
        Page {
            title: title.to_string(),
            subtitle: subtitle.to_string(),
            toc: Vec::new(),
            body: String::new(),
        }
    }

    /// Starts a section (closing the previous one) and lists it in the table of contents.
    pub fn section(&mut self, id: &str, title: &str) {
        if !self.toc.is_empty() {
            self.body.push_str("</section>\n");
        }
        let id = slug(id);
        let _ = writeln!(
            self.body,
            "<section id=\"{id}\">\n<h2>{}</h2>",
            inline(title)
        );
        self.toc.push((id, title.to_string()));
    }

    /// A sub-heading inside a section.
    pub fn heading(&mut self, text: &str) {
        let _ = writeln!(self.body, "<h3>{}</h3>", inline(text));
    }

    /// A muted note, e.g. why a section is empty.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p class=\"note\">{}</p>", inline(text));
    }

    /// A note saying that something is absent (a stage not in `needs`, a file not written).
    pub fn missing(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p class=\"note missing\">{}</p>", inline(text));
    }

    /// A table; cells that hold numbers are right-aligned. `title` attributes can be given per
    /// cell by writing `text\u{1}tooltip`.
    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        self.body.push_str("<div class=\"scroll\"><table>\n");
        // A key/value table (every header empty) has no header row.
        if headers.iter().any(|h| !h.is_empty()) {
            self.body.push_str("<thead><tr>");
            for h in headers {
                let _ = write!(self.body, "<th>{}</th>", inline(h));
            }
            self.body.push_str("</tr></thead>\n");
        }
        self.body.push_str("<tbody>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let (text, tip) = match cell.split_once('\u{1}') {
                    Some((t, tip)) => (t, Some(tip)),
                    None => (cell.as_str(), None),
                };
                let class = if is_numeric(text) {
                    " class=\"num\""
                } else {
                    ""
                };
                let tip = tip
                    .map(|t| format!(" title=\"{}\"", escape(t)))
                    .unwrap_or_default();
                let _ = write!(self.body, "<td{class}{tip}>{}</td>", escape(text));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody></table></div>\n");
    }

    /// A figure scaled to the page width: `src` is a data URI or a relative path.
    pub fn figure(&mut self, src: &str, caption: &str) {
        let _ = writeln!(
            self.body,
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            escape(src),
            plain(caption),
            inline(caption)
        );
    }

    /// Figures in a grid of page-width columns; a click shows one at full size (and back).
    pub fn figure_grid(&mut self, items: &[(String, String)]) {
        self.body.push_str("<div class=\"grid\">\n");
        for (src, caption) in items {
            let _ = writeln!(
                self.body,
                "<figure onclick=\"this.classList.toggle('full')\" title=\"click to enlarge\"><div class=\"scroll\"><img src=\"{}\" alt=\"{}\"></div><figcaption>{}</figcaption></figure>",
                escape(src),
                plain(caption),
                inline(caption)
            );
        }
        self.body.push_str("</div>\n");
    }

    /// Opens a collapsed block whose `summary` line shows it; close it with `end_details`.
    pub fn begin_details(&mut self, summary: &str) {
        let _ = writeln!(self.body, "<details><summary>{}</summary>", inline(summary));
    }

    pub fn end_details(&mut self) {
        self.body.push_str("</details>\n");
    }

    /// A block of Markdown, rendered (raw HTML shown as text).
    pub fn markdown(&mut self, md: &str) {
        self.body.push_str("<div class=\"md\">\n");
        self.body.push_str(&markdown(md));
        self.body.push_str("</div>\n");
    }

    /// The complete document.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{}</h1>\n",
            plain(&self.title),
            inline(&self.title)
        );
        if !self.subtitle.is_empty() {
            let _ = writeln!(out, "<p class=\"sub\">{}</p>", inline(&self.subtitle));
        }
        if !self.toc.is_empty() {
            out.push_str("<nav><ol>");
            for (id, title) in &self.toc {
                let _ = write!(out, "<li><a href=\"#{id}\">{}</a></li>", plain(title));
            }
            out.push_str("</ol></nav>\n");
        }
        out.push_str("</header>\n<main>\n");
        out.push_str(&self.body);
        if !self.toc.is_empty() {
            out.push_str("</section>\n");
        }
        out.push_str("</main>\n</body>\n</html>\n");
        out
    }
}

/// An HTML id from any text: lower-case ASCII letters, digits and dashes.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-').to_string();
    if t.is_empty() {
        "s".into()
    } else {
        t
    }
}

const CSS: &str = r#"
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa; --accent: #1f6feb; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; }
header, main { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; padding-bottom: 8px; border-bottom: 1px solid var(--line); }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.sub { color: var(--muted); margin: 0 0 10px; }
p.note { color: var(--muted); font-style: italic; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0; margin: 8px 0; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td.num { text-align: right; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 14px; }
td[title] { cursor: help; }
figure { margin: 12px 0 20px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.md { border-left: 3px solid var(--line); padding-left: 14px; }
.md h1 { font-size: 18px; margin: 12px 0 8px; }
.md h2 { font-size: 16px; border: 0; margin: 12px 0 8px; }
.md table { width: 100%; }
.md pre, .md code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.md pre { background: var(--head); padding: 8px; overflow-x: auto; white-space: pre-wrap; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.9em;
  background: var(--head); padding: 0 3px; border-radius: 3px; }
.texts td { min-width: 9em; }
main { padding-bottom: 48px; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px 16px; }
.grid figure { margin: 0; cursor: zoom-in; }
.grid figure.full { grid-column: 1 / -1; cursor: zoom-out; }
.grid figure.full img { max-width: none; }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: var(--accent); }
/* A phone: one figure per row, each at least 600 px wide (its labels legible), scrolling sideways. */
@media (max-width: 600px) {
  header, main { padding: 0 12px; }
  h1 { font-size: 22px; }
  .grid { grid-template-columns: minmax(0, 1fr); }
  th, td { padding: 4px 6px; }
  figure { overflow-x: auto; }
  figure img { min-width: 600px; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_keeps_tokens_visible() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        let html = markdown("**prompt:** <sos> once upon\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert!(html.contains("&lt;sos&gt;"), "{html}");
        assert!(
            html.contains("<table>") && html.contains("<strong>"),
            "{html}"
        );
    }

    #[test]
    fn page_has_sections_toc_and_numeric_cells() {
        let mut p = Page::new("T <1>", "sub");
        p.section("Training curves", "Training");
        p.table(&["k", "v"], &[vec!["ppl".into(), "7.49".into()]]);
        p.figure(&data_uri("image/png", b"xyz"), "fig");
        let html = p.render();
        assert!(html.contains("<title>T &lt;1&gt;</title>"));
        assert!(
            html.contains("href=\"#training-curves\"") && html.contains("id=\"training-curves\"")
        );
        assert!(html.contains("<td class=\"num\">7.49</td>"));
        assert!(html.contains("src=\"data:image/png;base64,eHl6\""));
        assert_eq!(
            html.matches("<section").count(),
            html.matches("</section>").count()
        );
        assert!(!html.contains("http"), "no network references");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("beam-eval@beam_width=5"), "beam-eval-beam-width-5");
        assert_eq!(slug("***"), "s");
    }
}
