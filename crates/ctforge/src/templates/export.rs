//! Exporting a stored template back to the directory layout, on disk or as a `.tar.gz`.

use std::path::Path;

use ctforge_template::Template;

use crate::storage::model::TemplateRecord;
use crate::storage::{Store, StoreError};

use super::TemplatesError;
use super::convert::record_to_template;

/// Loads the stored template `name` and rebuilds its model.
pub async fn load_template(
    store: &dyn Store,
    name: &str,
) -> Result<(TemplateRecord, Template), TemplatesError> {
    let record = match store.get_template_by_name(name).await {
        Ok(record) => record,
        Err(StoreError::NotFound) => return Err(TemplatesError::NotFound(name.to_owned())),
        Err(e) => return Err(e.into()),
    };
    let template = record_to_template(&record)?;
    Ok((record, template))
}

/// [`load_template`] with how many containers use it (a template page), in one round trip.
pub async fn load_template_page(
    store: &dyn Store,
    name: &str,
) -> Result<(TemplateRecord, Template, i64), TemplatesError> {
    let (record, used) = match store.template_page(name).await {
        Ok(found) => found,
        Err(StoreError::NotFound) => return Err(TemplatesError::NotFound(name.to_owned())),
        Err(e) => return Err(e.into()),
    };
    let template = record_to_template(&record)?;
    Ok((record, template, used))
}

/// Writes the stored template `name` into `out_dir` (the template directory itself, created
/// if missing) with [`ctforge_template::write_dir`]. Returns the model that was written.
pub async fn export(
    store: &dyn Store,
    name: &str,
    out_dir: &Path,
) -> Result<Template, TemplatesError> {
    let (_, template) = load_template(store, name).await?;
    ctforge_template::write_dir(&template, out_dir).map_err(|source| TemplatesError::Io {
        path: out_dir.display().to_string(),
        source,
    })?;
    Ok(template)
}

/// The template as a gzip-compressed tar archive holding `<name>/…` in the directory layout.
/// Scripts and `custom.sh` are executable (0755), everything else 0644; `mtime` is the
/// modification time stamped on every entry (Unix seconds).
pub fn export_tar_gz(template: &Template, mtime: u64) -> Result<Vec<u8>, TemplatesError> {
    let io_err = |source| TemplatesError::Io {
        path: format!("the archive of `{}`", template.name),
        source,
    };
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut archive = tar::Builder::new(encoder);
    for (path, text) in ctforge_template::render_files(template) {
        let executable = path.extension().is_some_and(|e| e == "sh");
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(text.len()).unwrap_or(u64::MAX));
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let full = Path::new(&template.name).join(&path);
        archive
            .append_data(&mut header, &full, text.as_bytes())
            .map_err(io_err)?;
    }
    let encoder = archive.into_inner().map_err(io_err)?;
    encoder.finish().map_err(io_err)
}
