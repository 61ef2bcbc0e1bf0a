//! Splitting a shell script into pipelines (`;`, `&&`, `||`, newlines, `|`, heredocs), and
//! deciding whether a command reads stdin.

pub(super) fn id_of(name: &str) -> u32 {
    match name {
        "root" => 0,
        "www-data" => 33,
        "nobody" => 65534,
        "postgres" => 105,
        other => other.parse().unwrap_or(1000),
    }
}

/// Parent directory of an absolute path.
pub fn parent_dir(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((p, _)) => p.to_string(),
    }
}

pub(super) fn simple_reads_stdin(argv: &[String]) -> bool {
    let Some(first) = argv.first() else {
        return false;
    };
    let args: Vec<&String> = argv
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match first.rsplit('/').next().unwrap_or(first) {
        "cat" | "base64" | "sha256sum" | "wc" | "head" | "tail" | "sort" => {
            args.is_empty() || args.iter().any(|a| *a == "-")
        }
        "tee" | "dd" => true,
        "grep" => args.len() <= 1,
        _ => false,
    }
}

pub(super) fn script_reads_stdin(script: &str) -> bool {
    // A command of the script (outside pipelines' non-first stages and without
    // an input redirection or heredoc) that reads stdin.
    for seg in split_script(script) {
        for (i, cmd) in seg.pipeline.iter().enumerate() {
            if i > 0 || cmd.heredoc.is_some() || cmd.text.contains('<') {
                continue;
            }
            let words = shell_words::split(&cmd.text).unwrap_or_default();
            let mut argv = Vec::new();
            let mut skip = false;
            for w in words {
                if skip {
                    skip = false;
                    continue;
                }
                if matches!(w.as_str(), ">" | ">>" | "1>" | "2>" | "&>" | "2>>") {
                    skip = true;
                    continue;
                }
                if w.starts_with('>') || w.starts_with("2>") || w.starts_with("&>") {
                    continue;
                }
                argv.push(w);
            }
            if simple_reads_stdin(&argv) {
                return true;
            }
        }
    }
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sep {
    Seq,
    And,
    Or,
}

#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub(super) text: String,
    pub(super) heredoc: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub(super) sep: Sep,
    pub(super) pipeline: Vec<Cmd>,
}

/// Split a script into `;`/`&&`/`||`/newline separated pipelines, collecting heredocs.
pub(super) fn split_script(script: &str) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    let mut pipeline: Vec<Cmd> = Vec::new();
    let mut cur = String::new();
    let mut sep = Sep::Seq;
    let mut pending_heredocs: Vec<(usize, usize, String, bool)> = Vec::new(); // (segment idx, cmd idx, delim, strip tabs)
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    let mut cur_heredoc: Option<(String, bool)> = None;
    let flush_cmd = |cur: &mut String,
                     pipeline: &mut Vec<Cmd>,
                     hd: &mut Option<(String, bool)>,
                     pend: &mut Vec<(usize, usize, String, bool)>,
                     seg_idx: usize| {
        let t = cur.trim().to_string();
        if !t.is_empty() {
            if let Some((d, strip)) = hd.take() {
                pend.push((seg_idx, pipeline.len(), d, strip));
            }
            pipeline.push(Cmd {
                text: t,
                heredoc: None,
            });
        }
        hd.take();
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            cur.push(c);
            if c == '\\' && q == '"' && i + 1 < chars.len() {
                cur.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                cur.push(c);
            }
            '\\' if i + 1 < chars.len() => {
                if chars[i + 1] == '\n' {
                    i += 2;
                    continue;
                }
                cur.push(c);
                cur.push(chars[i + 1]);
                i += 2;
                continue;
            }
            '#' if cur.trim().is_empty() || cur.ends_with(' ') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '<' if i + 1 < chars.len() && chars[i + 1] == '<' && chars.get(i + 2) != Some(&'<') => {
                let mut j = i + 2;
                let strip = chars.get(j) == Some(&'-');
                if strip {
                    j += 1;
                }
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let mut delim = String::new();
                while j < chars.len() && !chars[j].is_whitespace() && !";|&".contains(chars[j]) {
                    if chars[j] != '\'' && chars[j] != '"' {
                        delim.push(chars[j]);
                    }
                    j += 1;
                }
                cur_heredoc = Some((delim, strip));
                i = j;
                continue;
            }
            '\n' | ';' => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
                if !pipeline.is_empty() {
                    segs.push(Segment {
                        sep,
                        pipeline: std::mem::take(&mut pipeline),
                    });
                    sep = Sep::Seq;
                }
                if c == '\n' && !pending_heredocs.is_empty() {
                    // Read heredoc bodies from the following lines.
                    i += 1;
                    for (si, ci, delim, strip) in std::mem::take(&mut pending_heredocs) {
                        let mut body = String::new();
                        loop {
                            if i >= chars.len() {
                                break;
                            }
                            let start = i;
                            while i < chars.len() && chars[i] != '\n' {
                                i += 1;
                            }
                            let line: String = chars[start..i].iter().collect();
                            i += 1;
                            let cmp = if strip {
                                line.trim_start_matches('\t')
                            } else {
                                line.as_str()
                            };
                            if cmp == delim {
                                break;
                            }
                            body.push_str(cmp);
                            body.push('\n');
                        }
                        if let Some(seg) = segs.get_mut(si)
                            && let Some(cmd) = seg.pipeline.get_mut(ci)
                        {
                            cmd.heredoc = Some(body.into_bytes());
                        }
                    }
                    continue;
                }
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
                segs.push(Segment {
                    sep,
                    pipeline: std::mem::take(&mut pipeline),
                });
                sep = Sep::And;
                i += 2;
                continue;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
                segs.push(Segment {
                    sep,
                    pipeline: std::mem::take(&mut pipeline),
                });
                sep = Sep::Or;
                i += 2;
                continue;
            }
            '|' => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    let seg_idx = segs.len();
    flush_cmd(
        &mut cur,
        &mut pipeline,
        &mut cur_heredoc,
        &mut pending_heredocs,
        seg_idx,
    );
    if !pipeline.is_empty() {
        segs.push(Segment { sep, pipeline });
    }
    segs.retain(|s| !s.pipeline.is_empty());
    segs
}
