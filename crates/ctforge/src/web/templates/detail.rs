//! `/templates/{name}`: one template with tabs Config, Scripts (ordered, highlighted, line
//! numbers), Packages (grouped by manager) and Files (target, policy, content), and the
//! actions edit, duplicate, export and delete.

use axum::extract::{Path, Query, State};
use ctforge_template::{FilePolicy, PackageManager, Template};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::model::TemplateRecord;
use crate::templates;
use crate::web::components::{self as ui, Confirm, Field, Tone};
use crate::web::home::viewer;

use super::form::urlencode;
use super::highlight;
use super::{source_badges, tag_href, tags_of};

/// Query of the detail page.
#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    /// `config`, `scripts`, `packages` or `files`.
    #[serde(default)]
    pub tab: String,
    /// Set after a save.
    #[serde(default)]
    pub saved: Option<String>,
}

/// `GET /templates/{name}?tab=`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<Markup, AppError> {
    let notice = query
        .saved
        .is_some()
        .then(|| (Tone::Ok, "Template saved.".to_owned()));
    page(&state, &user, &name, &query.tab, notice).await
}

fn policy_badge(policy: FilePolicy) -> Markup {
    let tone = match policy {
        FilePolicy::Replace => Tone::Info,
        FilePolicy::Default => Tone::Ok,
        FilePolicy::Backup => Tone::Warn,
    };
    ui::badge(Some(tone), policy.as_str())
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not set",
    }
}

/// Renders the detail page (also used to show refusals of delete and duplicate).
pub async fn page(
    state: &AppState,
    user: &CurrentUser,
    name: &str,
    tab: &str,
    notice: Option<(Tone, String)>,
) -> Result<Markup, AppError> {
    let (record, template, used) =
        templates::load_template_page(state.store.as_ref(), name).await?;
    let v = viewer(user);
    let tab = match tab {
        "scripts" | "packages" | "files" | "docs" => tab,
        _ => "config",
    };
    let base = format!("/templates/{}", urlencode(name));
    let tabs = [
        ("config", "Config", format!("{base}?tab=config")),
        ("scripts", "Scripts", format!("{base}?tab=scripts")),
        ("packages", "Packages", format!("{base}?tab=packages")),
        ("files", "Files", format!("{base}?tab=files")),
        ("docs", "Docs", format!("{base}?tab=docs")),
    ];
    let tab_items: Vec<(&str, &str, String)> =
        tabs.iter().map(|(k, t, h)| (*k, *t, h.clone())).collect();
    let row = &record.row;
    let warnings: Vec<(bool, String)> = template
        .validate()
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| (true, d.to_string()))
        .collect();
    let (delete_text, hidden): (String, &[(&str, &str)]) = if used > 0 {
        (
            format!(
                "{used} containers reference {name}. Deleting it anyway leaves their records without a template; the containers themselves are not touched."
            ),
            &[("force", "1")],
        )
    } else {
        (
            format!(
                "The template {name} is removed from ctforge. Files on disk are not touched; a filesystem template comes back with the next discovery."
            ),
            &[],
        )
    };
    let body = html! {
        (ui::breadcrumbs(&[("/templates", "Templates"), ("", name)]))
        div.page-head {
            div {
                h1 { (row.app) " " span.mono.muted { "(" (row.name) ")" } }
                div.row { (source_badges(&row.source, row.diverged))
                    @if let Some(git) = templates::StoredConfig::parse(&row.name, &row.config_json).ok().and_then(|c| c.git) {
                        span.mono.muted { "from git " (git.url) " (" (git.branch) ")@" (git.short()) }
                    } @else if let Some(path) = &row.source_path { span.mono.muted { (path) } } }
            }
            div.row {
                a.btn.btn-primary href={ "/containers/new?template=" (urlencode(name)) } { "Create container" }
                @if v.editor { a.btn href={ (base) "/edit" } { "Edit" } }
                @if v.editor { (ui::disclosure("Duplicate…", html! {
                    form.form method="post" action={ (base) "/duplicate" } {
                        (ui::csrf_field(&v))
                        (ui::field(&Field { value: "", hint: Some("Leave empty for <name>-copy. The copy is a custom template."), ..Field::new("new_name", "Name of the copy") }))
                        button.btn.btn-primary type="submit" { "Duplicate" }
                    }
                })) }
                a.btn href={ "/api/v1/templates/" (urlencode(name)) "/export" } download { "Export .tar.gz" }
                @if v.editor { (ui::confirm_button(&Confirm {
                    id: "delete-template",
                    label: if used > 0 { "Delete…" } else { "Delete" },
                    title: &format!("Delete template {name}?"),
                    text: &delete_text,
                    action: &format!("{base}/delete"),
                    confirm: if used > 0 { "Delete anyway" } else { "Delete" },
                    hidden,
                }, &v)) }
            }
        }
        @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
        @if row.diverged {
            @let git = templates::StoredConfig::parse(&row.name, &row.config_json).ok().and_then(|c| c.git);
            div.alert.alert-warn role="status" data-diverged {
                @match &git {
                    Some(g) => {
                        p { "Diverged from git " span.mono { (g.url) " (" (g.branch) ") @ " (g.short()) } ": this template was edited in ctforge, so Sync sources no longer overwrites it with the repository's version." }
                        p { "The way back: export it and commit the changes to the repository, or return to git (the edits made here are dropped and the next sync takes the branch's version)." }
                    }
                    None => {
                        p { "Diverged: this filesystem template was edited in ctforge, so discovery no longer updates it from disk." }
                        p { "The way back: export it to bring the changes back to the directory, or return to the directory's version (the edits made here are dropped)." }
                    }
                }
                @if v.editor {
                    (ui::confirm_button(&Confirm {
                        id: "reattach-template",
                        label: if git.is_some() { "Return to git" } else { "Return to disk" },
                        title: &format!("Drop the edits of {name}?"),
                        text: "The edits made in ctforge are dropped and the template is taken again from its source. Containers already created keep what they got.",
                        action: &format!("{base}/reattach"),
                        confirm: "Drop the edits",
                        hidden: &[],
                    }, &v))
                }
            }
        }
        (ui::problem_list("This template has problems", &warnings))
        @if !row.description.is_empty() { p { (row.description) } }
        div.tags { @for t in tags_of(&row.tags) { (ui::tag_link(&t, &tag_href(&t))) } }
        @if used > 0 {
            (crate::web::containers::drift::rollout_form(name, &v, usize::try_from(used).unwrap_or(0)))
        }
        (ui::tabs("Template sections", &tab_items, tab, html! {
            @match tab {
                "scripts" => { (scripts_tab(&record)) }
                "packages" => { (packages_tab(&template)) }
                "files" => { (files_tab(&template)) }
                "docs" => { (docs_tab(&template)) }
                _ => { (config_tab(&template)) }
            }
        }))
    };
    Ok(ui::layout(&row.app, "/templates", &v, body))
}

/// The template's documents: Markdown rendered (raw HTML shown as text, only http(s),
/// mailto and relative links kept), other files as code.
fn docs_tab(t: &Template) -> Markup {
    html! {
        @if t.docs.is_empty() {
            (ui::empty_state("No documents", "README.md, CREDENTIALS.md and other files next to template.conf are kept with the template and shown here.", None))
        }
        @for d in &t.docs {
            h2.mono { (d.path) }
            @if d.path.to_ascii_lowercase().ends_with(".md") {
                div.markdown { (maud::PreEscaped(markdown_html(&d.content))) }
            } @else {
                (ui::code_view(&d.path, &highlight::shell(&d.content)))
            }
        }
    }
}

/// Markdown to HTML without raw HTML: HTML in the text is escaped, and links or images to
/// anything but http(s), mailto or a relative address lose their target.
pub fn markdown_html(text: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Parser, Tag};
    let safe = |url: &CowStr<'_>| {
        let lower = url.to_ascii_lowercase();
        !lower.contains(':')
            || lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("mailto:")
    };
    let events = Parser::new(text).map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn config_tab(t: &Template) -> Markup {
    let c = &t.config;
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "not set".to_owned());
    let num =
        |v: Option<u32>, unit: &str| v.map_or("not set".to_owned(), |n| format!("{n} {unit}"));
    let conf = ctforge_template::render_conf(c);
    html! {
        dl.facts {
            dt { "App" } dd { (text(&c.app)) }
            dt { "CPU" } dd { (c.cpu.map_or("not set".to_owned(), |n| ui::count(n, "core"))) }
            dt { "RAM" } dd { (num(c.ram_mib, "MiB")) }
            dt { "Disk" } dd { (num(c.disk_gib, "GiB")) }
            dt { "Swap" } dd { (num(c.swap_mib, "MiB")) }
            dt { "OS" } dd { (text(&c.os)) " " (c.os_version.clone().unwrap_or_default()) }
            dt { "Unprivileged" } dd { (yes_no(c.unprivileged)) }
            dt { "Nesting" } dd { (yes_no(c.nesting)) }
            dt { "keyctl" } dd { (yes_no(c.keyctl)) }
            dt { "FUSE" } dd { (yes_no(c.fuse)) }
            dt { "Storage" } dd { (text(&c.storage)) }
            dt { "Bridge" } dd { (text(&c.bridge)) }
            @for (k, val) in &c.extra {
                dt.mono { (k) }
                dd {
                    (val)
                    @if let Some(note) = ctforge_template::conf::library_key_note(k) {
                        " " span.muted { "(information: " (note) ")" }
                    }
                }
            }
        }
        h2 { "template.conf" }
        (ui::code_view("template.conf", &highlight::shell(&conf)))
    }
}

fn scripts_tab(record: &TemplateRecord) -> Markup {
    let mut scripts = record.scripts.clone();
    scripts.sort_by_key(|s| (s.position, s.name.clone()));
    html! {
        @if scripts.is_empty() {
            (ui::empty_state("No scripts", "Scripts run in the container after it is created, in numeric order. Add one in the editor.", None))
        }
        @for s in &scripts {
            section.script {
                h2.row {
                    span.mono { (ctforge_template::Script::new(u32::try_from(s.position).unwrap_or(0), s.name.clone(), "").file_name()) }
                    span.muted { "order " (s.position) }
                    @if s.enabled { (ui::badge(Some(Tone::Ok), "enabled")) } @else { (ui::badge(None, "disabled")) }
                }
                (ui::code_view(&s.name, &highlight::shell(&s.content)))
            }
        }
    }
}

fn packages_tab(t: &Template) -> Markup {
    html! {
        @if t.packages.is_empty() && t.custom_installer.is_none() && t.custom_lists.is_empty() {
            (ui::empty_state("No packages", "Package lists are installed with their manager. Add a list or copy a bucket in the editor.", None))
        }
        @for manager in PackageManager::ALL {
            @let lists: Vec<_> = t.packages.iter().filter(|l| l.manager == manager).collect();
            @if !lists.is_empty() {
                section {
                    h2 { (manager.as_str()) " " span.muted { "(" (lists.iter().map(|l| l.packages.len()).sum::<usize>()) ")" } }
                    @for l in lists {
                        h3.manager-head.mono { (l.file_name()) }
                        @if l.packages.is_empty() { p.muted { "empty list" } }
                        ul.pkg-list { @for p in &l.packages { li { code { (p.spec(manager)) } } } }
                    }
                }
            }
        }
        @for list in &t.custom_lists {
            h3.manager-head.mono { (list.file_name()) }
            ul.pkg-list {
                @for p in list.parse().0 {
                    li { code { (p.name) } " " span.muted { "installed by " } code { (p.install) } " " span.muted { "unless " } code { (p.check) } }
                }
            }
        }
        @if let Some(custom) = &t.custom_installer {
            h2.mono { "custom.sh" }
            (ui::code_view("custom.sh", &highlight::shell(custom)))
        }
    }
}

fn files_tab(t: &Template) -> Markup {
    html! {
        @if t.files.is_empty() {
            (ui::empty_state("No files", "Config files are written into the container with a policy: replace, default (only if missing) or backup.", None))
        }
        @for f in &t.files {
            section.file {
                h2.row { span.mono { (f.name) } (policy_badge(f.policy)) }
                p { "Target: " code { (f.target_path()) } }
                (ui::code_view(&f.name, &highlight::plain(&f.content)))
            }
        }
    }
}

#[cfg(test)]
mod markdown_tests {
    #[test]
    fn markdown_renders_without_raw_html_or_script_links() {
        let html = super::markdown_html(
            "# Title\n\n<script>alert(1)</script>\n\n[ok](https://x.org) [bad](javascript:alert(1)) `code`",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("href=\"https://x.org\""), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
    }
}
