//! The component module every page uses: layout, buttons, badges, alerts, forms with inline
//! errors, tables, tabs, dialogs, empty states. No page invents its own widgets.

pub mod chart;

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Who is looking at the page, for the header.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    /// Proxmox user id, if signed in.
    pub username: Option<String>,
    /// CSRF token for forms.
    pub csrf_token: Option<String>,
    /// A ctforge admin: clusters, roles, other users' tokens (controls hidden otherwise).
    pub admin: bool,
    /// A ctforge admin or template editor: template, discovery and bucket controls.
    pub editor: bool,
    /// A ctforge admin or auditor: the audit log.
    pub auditor: bool,
}

/// Navigation entries: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Containers"),
    ("/templates", "Templates"),
    ("/buckets", "Buckets"),
    ("/settings/clusters", "Clusters"),
    ("/settings/tokens", "API tokens"),
    ("/jobs", "Jobs"),
    ("/audit", "Audit log"),
    ("/settings/roles", "Roles"),
    ("/settings/notifications", "Notifications"),
    ("/api/docs", "API docs"),
];

/// Whether `viewer` may open the navigation entry `path` (the others are not shown).
fn nav_visible(viewer: &Viewer, path: &str) -> bool {
    match path {
        "/audit" => viewer.auditor,
        "/settings/roles" | "/settings/notifications" => viewer.admin,
        _ => true,
    }
}

/// The page shell: head, skip link, header with navigation, main content.
pub fn layout(title: &str, current: &str, viewer: &Viewer, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ctforge" }
                // The stored theme choice, applied before the first paint (no flash of the
                // other theme); `assets/app.js` stores it when the toggle is used.
                script src="/static/theme.js" {}
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "ctforge" }
                    @if let Some(user) = &viewer.username {
                        nav aria-label="Main" {
                            @for (path, label) in NAV.iter().filter(|(p, _)| nav_visible(viewer, p)) {
                                @if *path == current {
                                    a href=(path) aria-current="page" { (label) }
                                } @else {
                                    a href=(path) { (label) }
                                }
                            }
                        }
                        div.user {
                            span { (user) }
                            (theme_toggle())
                            form method="post" action="/logout" {
                                (csrf_field(viewer))
                                button.btn type="submit" { "Sign out" }
                            }
                        }
                    } @else {
                        div.grow {}
                        (theme_toggle())
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// The light/dark switch: a toggle button named "Dark theme", pressed while the dark theme is
/// shown. Hidden until `assets/app.js` runs, since it needs the script.
fn theme_toggle() -> Markup {
    html! {
        button.btn.theme-toggle type="button" data-theme-toggle aria-pressed="false" hidden title="Dark theme" {
            span aria-hidden="true" { "◐" } span.sr-only { "Dark theme" }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! {
        @if let Some(token) = &viewer.csrf_token {
            input type="hidden" name="csrf_token" value=(token);
        }
    }
}

/// Alert kinds.
#[derive(Clone, Copy, Debug)]
pub enum Tone {
    /// Success.
    Ok,
    /// Warning.
    Warn,
    /// Error.
    Err,
    /// Information.
    Info,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Ok => "ok",
            Tone::Warn => "warn",
            Tone::Err => "err",
            Tone::Info => "info",
        }
    }
}

/// A message box; errors are announced to screen readers.
pub fn alert(tone: Tone, text: &str) -> Markup {
    let role = if matches!(tone, Tone::Err) {
        "alert"
    } else {
        "status"
    };
    html! { div class={ "alert alert-" (tone.class()) } role=(role) { (text) } }
}

/// A small status label.
pub fn badge(tone: Option<Tone>, text: &str) -> Markup {
    match tone {
        Some(t) => html! { span class={ "badge badge-" (t.class()) } { (text) } },
        None => html! { span.badge { (text) } },
    }
}

/// One form input with its label, hint and inline error; keeps what the user typed.
pub struct Field<'a> {
    /// Input name (also the id).
    pub name: &'a str,
    /// Label text.
    pub label: &'a str,
    /// `text`, `password`, `number`, `textarea`, …
    pub kind: &'a str,
    /// Current value.
    pub value: &'a str,
    /// Error shown under the field.
    pub error: Option<&'a str>,
    /// Help text.
    pub hint: Option<&'a str>,
    /// Required input.
    pub required: bool,
    /// `autocomplete` attribute.
    pub autocomplete: Option<&'a str>,
}

impl<'a> Field<'a> {
    /// A text field.
    pub fn new(name: &'a str, label: &'a str) -> Self {
        Self {
            name,
            label,
            kind: "text",
            value: "",
            error: None,
            hint: None,
            required: false,
            autocomplete: None,
        }
    }
}

/// Renders a [`Field`].
pub fn field(f: &Field<'_>) -> Markup {
    let error_id = format!("{}-error", f.name);
    let hint_id = format!("{}-hint", f.name);
    let described = match (f.error.is_some(), f.hint.is_some()) {
        (true, true) => Some(format!("{error_id} {hint_id}")),
        (true, false) => Some(error_id.clone()),
        (false, true) => Some(hint_id.clone()),
        (false, false) => None,
    };
    html! {
        div.field {
            label for=(f.name) { (f.label) }
            @if f.kind == "textarea" {
                textarea id=(f.name) name=(f.name) required[f.required] aria-invalid=[f.error.map(|_| "true")] aria-describedby=[described.as_deref()] { (f.value) }
            } @else {
                input id=(f.name) name=(f.name) type=(f.kind) value=(f.value) required[f.required]
                    autocomplete=[f.autocomplete] aria-invalid=[f.error.map(|_| "true")] aria-describedby=[described.as_deref()];
            }
            @if let Some(hint) = f.hint { div.hint id=(hint_id) { (hint) } }
            @if let Some(error) = f.error { div.error id=(error_id) { (error) } }
        }
    }
}

/// A `<select>` with label and inline error.
pub fn select(
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            select id=(name) name=(name) aria-invalid=[error.map(|_| "true")] {
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
            @if let Some(error) = error { div.error { (error) } }
        }
    }
}

/// An empty state with a call to action.
pub fn empty_state(title: &str, text: &str, action: Option<(&str, &str)>) -> Markup {
    html! {
        div.empty.card {
            h2 { (title) }
            p { (text) }
            @if let Some((href, label)) = action { a.btn.btn-primary href=(href) { (label) } }
        }
    }
}

/// Tabs as links (each tab is its own URL, so they work without JavaScript) and the panel of
/// the selected one. ARIA tabs: the tabs name the panel they control and the panel is labelled
/// by the selected tab; `assets/app.js` adds the keyboard model (arrow keys, Home, End move
/// between tabs, Enter or Space opens one). `current` is the selected key.
pub fn tabs(label: &str, items: &[(&str, &str, String)], current: &str, panel: Markup) -> Markup {
    let id = |key: &str| format!("tab-{key}");
    // An unknown key shows the first tab's content, so the first tab is the selected one.
    let current = items
        .iter()
        .map(|(key, _, _)| *key)
        .find(|key| *key == current)
        .or_else(|| items.first().map(|(key, _, _)| *key))
        .unwrap_or(current);
    html! {
        div.tabs {
            div role="tablist" aria-label=(label) {
                @for (key, text, href) in items {
                    @let selected = *key == current;
                    a role="tab" id=(id(key)) href=(href) aria-selected=(if selected { "true" } else { "false" })
                        aria-controls=[selected.then_some("tab-panel")] { (text) }
                }
            }
        }
        div.tab-panel id="tab-panel" role="tabpanel" aria-labelledby=(id(current)) tabindex="0" { (panel) }
    }
}

/// A confirmation dialog around a form; the opener is a button with `data-dialog-open` (see
/// [`dialog_opener`]).
pub fn confirm_dialog(
    id: &str,
    title: &str,
    text: &str,
    action: &str,
    danger_label: &str,
    viewer: &Viewer,
) -> Markup {
    dialog(
        &DialogParts {
            id,
            title,
            text,
            action,
            confirm: danger_label,
            hidden: &[],
            open_cancel: None,
        },
        viewer,
    )
}

/// The button that opens dialog `id` (a plain button without JavaScript support for dialogs
/// does nothing, so pages pair it with a form that works without the dialog where that matters).
pub fn dialog_opener(id: &str, label: &str, danger: bool) -> Markup {
    html! {
        button.btn.btn-danger[danger] type="button" data-dialog-open=(id) aria-haspopup="dialog" { (label) }
    }
}

/// The one modal dialog: named by its title, described by its text, Cancel first (it gets the
/// focus when the dialog opens). `assets/app.js` keeps Tab inside it and gives the focus back
/// to the opener when it closes (Cancel or Escape).
struct DialogParts<'a> {
    id: &'a str,
    title: &'a str,
    text: &'a str,
    action: &'a str,
    confirm: &'a str,
    hidden: &'a [(&'a str, &'a str)],
    /// Rendered open, with a Cancel link to this URL (no script needed).
    open_cancel: Option<&'a str>,
}

fn dialog(d: &DialogParts<'_>, viewer: &Viewer) -> Markup {
    let id = d.id;
    html! {
        dialog id=(id) aria-labelledby={ (id) "-title" } aria-describedby={ (id) "-text" } open[d.open_cancel.is_some()] {
            h2 id={ (id) "-title" } { (d.title) }
            p id={ (id) "-text" } { (d.text) }
            form method="post" action=(d.action) class="row" {
                (csrf_field(viewer))
                @for (name, value) in d.hidden { input type="hidden" name=(name) value=(value); }
                @match d.open_cancel {
                    Some(url) => a.btn href=(url) { "Cancel" },
                    None => button.btn type="button" data-dialog-close { "Cancel" },
                }
                button.btn.btn-danger type="submit" { (d.confirm) }
            }
        }
    }
}

/// Inline raw HTML that we produced ourselves (never user input).
pub fn trusted(html: &'static str) -> Markup {
    PreEscaped(html.to_owned())
}

/// The one mapping from a container/service state to a badge tone and icon.
pub fn status_tone(status: &str) -> (Option<Tone>, &'static str) {
    match status {
        "running" | "active" | "ok" | "succeeded" => (Some(Tone::Ok), "●"),
        "stopped" | "inactive" => (None, "■"),
        "creating" | "queued" | "deleting" | "activating" | "reloading" => (Some(Tone::Info), "◔"),
        "error" | "failed" | "missing" => (Some(Tone::Err), "✕"),
        _ => (Some(Tone::Warn), "?"),
    }
}

/// A status badge: colour and an icon plus the text (colour-blind safe).
pub fn status_badge(status: &str) -> Markup {
    let (tone, icon) = status_tone(status);
    let class = match tone {
        Some(t) => format!("badge status badge-{}", t.class()),
        None => "badge status".to_owned(),
    };
    html! { span class=(class) { span aria-hidden="true" { (icon) " " } (status) } }
}

/// A tag chip whose colour is derived from the tag name (stable across pages).
pub fn tag_chip(tag: &str) -> Markup {
    // One of 24 hues (a class in `assets/app.css`: the CSP refuses `style=` attributes).
    let hue = tag
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 24;
    html! { span class={ "tag tag-h" (hue) } { (tag) } }
}

/// A usage bar: `used` of `limit` with a text read-out and colour thresholds (70 %, 90 %).
pub fn usage_bar(label: &str, fraction: Option<f64>, text: &str) -> Markup {
    let pct = fraction
        .filter(|f| f.is_finite())
        .map(|f| (f * 100.0).clamp(0.0, 100.0));
    let level = match pct {
        Some(p) if p >= 90.0 => "high",
        Some(p) if p >= 70.0 => "mid",
        _ => "low",
    };
    html! {
        div.usage {
            div.usage-head { span { (label) } span.muted { (text) } }
            @if let Some(p) = pct {
                div.usage-track role="meter" aria-label=(label) aria-valuemin="0" aria-valuemax="100" aria-valuenow=(format!("{p:.0}")) {
                    // An SVG bar: its width is an attribute, not a `style=` the CSP refuses.
                    svg.usage-svg viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
                        rect class={ "usage-fill usage-" (level) } x="0" y="0" height="1" width=(format!("{p:.1}")) {}
                    }
                }
            } @else {
                div.usage-track aria-hidden="true" {}
            }
        }
    }
}

/// A usage bar for a table cell: the column head names it, so the label is only for screen
/// readers (on the meter).
pub fn usage_cell(label: &str, fraction: Option<f64>, text: &str) -> Markup {
    let pct = fraction
        .filter(|f| f.is_finite())
        .map(|f| (f * 100.0).clamp(0.0, 100.0));
    let level = match pct {
        Some(p) if p >= 90.0 => "high",
        Some(p) if p >= 70.0 => "mid",
        _ => "low",
    };
    html! {
        div.usage.usage-compact {
            span.usage-text { (text) }
            @if let Some(p) = pct {
                meter class={ "usage-meter usage-" (level) } min="0" max="100" value=(format!("{p:.0}")) aria-label=(label) {}
            }
        }
    }
}

/// A count with its noun in the right number: `1 template`, `2 templates` (`plural` for nouns
/// whose plural is not `noun` + `s`).
pub fn count(n: impl std::fmt::Display, noun: &str) -> String {
    let n = n.to_string();
    if n == "1" {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes as a human reads them (`1.5 GiB`).
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration in seconds as `2 d 3 h`, `2 h 14 m`, `5 m`.
pub fn fmt_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) if m == 0 => format!("{secs} s"),
        (0, 0) => format!("{m} m"),
        (0, _) => format!("{h} h {m} m"),
        _ => format!("{d} d {h} h"),
    }
}

/// A Unix-millisecond timestamp as UTC text (`2026-11-25 21:48 UTC`).
pub fn fmt_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// Breadcrumbs: (href, label) pairs; the last one is the current page.
pub fn breadcrumbs(items: &[(&str, &str)]) -> Markup {
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            ol {
                @for (i, (href, label)) in items.iter().enumerate() {
                    @if i + 1 == items.len() {
                        li aria-current="page" { (label) }
                    } @else {
                        li { a href=(href) { (label) } }
                    }
                }
            }
        }
    }
}

/// A button that cannot be used right now, with the reason as tooltip and for screen readers.
pub fn disabled_button(label: &str, reason: &str) -> Markup {
    html! { button.btn type="button" disabled aria-disabled="true" title=(reason) { (label) span.sr-only { " (" (reason) ")" } } }
}

/// A form with one submit button and hidden fields (no confirmation).
pub fn action_form(
    action: &str,
    label: &str,
    primary: bool,
    hidden: &[(&str, &str)],
    viewer: &Viewer,
) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(viewer))
            @for (name, value) in hidden { input type="hidden" name=(name) value=(value); }
            @if primary {
                button.btn.btn-primary type="submit" { (label) }
            } @else {
                button.btn type="submit" { (label) }
            }
        }
    }
}

/// A button opening a confirmation dialog (which names the object) whose form posts to
/// `action` with hidden fields.
pub struct Confirm<'a> {
    /// Unique dialog id.
    pub id: &'a str,
    /// Opener button label.
    pub label: &'a str,
    /// Dialog title (names the object).
    pub title: &'a str,
    /// Dialog text.
    pub text: &'a str,
    /// Form action.
    pub action: &'a str,
    /// Confirm button label.
    pub confirm: &'a str,
    /// Hidden fields.
    pub hidden: &'a [(&'a str, &'a str)],
}

/// Renders a [`Confirm`] opener and its dialog.
pub fn confirm_button(c: &Confirm<'_>, viewer: &Viewer) -> Markup {
    html! {
        (dialog_opener(c.id, c.label, false))
        (confirm_dialog_of(c, viewer, None))
    }
}

/// The dialog of a [`Confirm`] without its opener. Closed, a script opens it (`showModal`,
/// e.g. after filling in its title and text); with `open_cancel = Some(url)` it is rendered
/// open in the page with a Cancel link to `url` — a confirmation step that needs no script.
pub fn confirm_dialog_of(c: &Confirm<'_>, viewer: &Viewer, open_cancel: Option<&str>) -> Markup {
    dialog(
        &DialogParts {
            id: c.id,
            title: c.title,
            text: c.text,
            action: c.action,
            confirm: c.confirm,
            hidden: c.hidden,
            open_cancel,
        },
        viewer,
    )
}

/// Pagination links; `href(page)` builds each link.
pub fn pagination(page: usize, pages: usize, href: &dyn Fn(usize) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a.btn href=(href(page - 1)) rel="prev" { "← Previous" } }
                span.muted { "Page " (page) " of " (pages) }
                @if page < pages { a.btn href=(href(page + 1)) rel="next" { "Next →" } }
            }
        }
    }
}

/// A degraded-mode banner ("what is unreachable since when").
pub fn banner(tone: Tone, title: &str, text: &str) -> Markup {
    html! {
        div class={ "alert banner alert-" (tone.class()) } role="status" {
            strong { (title) } " " (text)
        }
    }
}

/// A checkbox with its label and an optional hint (the value sent when checked is `on`).
pub fn checkbox(name: &str, label: &str, checked: bool, hint: Option<&str>) -> Markup {
    html! {
        div.field.field-check {
            label {
                input type="checkbox" name=(name) checked[checked];
                " " (label)
            }
            @if let Some(hint) = hint { div.hint { (hint) } }
        }
    }
}

/// A read-only code view with line numbers. Each line is markup the caller produced from
/// escaped text (e.g. a syntax highlighter); `label` names the code for screen readers.
pub fn code_view(label: &str, lines: &[Markup]) -> Markup {
    html! {
        div.code-view role="region" aria-label=(label) tabindex="0" {
            table {
                tbody {
                    @for (i, line) in lines.iter().enumerate() {
                        tr {
                            td.ln aria-hidden="true" { (i + 1) }
                            td.src { code { (line) } }
                        }
                    }
                }
            }
        }
    }
}

/// An empty state whose call to action is any markup (for example a form with a button).
pub fn empty_state_with(title: &str, text: &str, action: Markup) -> Markup {
    html! {
        div.empty.card {
            h2 { (title) }
            p { (text) }
            (action)
        }
    }
}

/// A tag chip that links to a filtered list (`href`), colour as [`tag_chip`].
pub fn tag_link(tag: &str, href: &str) -> Markup {
    html! { a.tag-link href=(href) title={ "Show only " (tag) } { (tag_chip(tag)) } }
}

/// A list of problems (errors and warnings) with their location, announced to screen readers.
pub fn problem_list(title: &str, items: &[(bool, String)]) -> Markup {
    html! {
        @if !items.is_empty() {
            div.alert.alert-err role="alert" {
                strong { (title) }
                ul.problems {
                    @for (is_error, text) in items {
                        li class=(if *is_error { "problem-err" } else { "problem-warn" }) {
                            (if *is_error { "error: " } else { "warning: " }) (text)
                        }
                    }
                }
            }
        }
    }
}

/// A disclosure: a button-like summary that opens `body` in place (works without JavaScript).
pub fn disclosure(label: &str, body: Markup) -> Markup {
    html! {
        details.disclosure {
            summary.btn { (label) }
            div.disclosure-body { (body) }
        }
    }
}
