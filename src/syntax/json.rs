//! The JSON reader: JSON text → [`Playbook`] with a [`SourceMap`] of every value's span.
//!
//! serde_json checks the text, a small scanner indexes each value's span by JSON pointer,
//! and `serde_path_to_error` names the path of a shape error so the diagnostic points at it.
//! Must not know the DSL.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic};
use crate::model::{self, Duration, Pattern, Playbook, Template};
use crate::source::{SourceMap, Span, pointer_segment};

pub(crate) fn parse_json(text: &str) -> Result<(Playbook, SourceMap), Vec<Diagnostic>> {
    // A UTF-8 byte order mark (editors on Windows add one) is not JSON whitespace; read it as
    // three spaces, the same three bytes, so every span still points into the original text.
    let blanked;
    let text = match text.strip_prefix('\u{FEFF}') {
        Some(rest) => {
            blanked = format!("   {rest}");
            blanked.as_str()
        }
        None => text,
    };
    let mut value: Value = serde_json::from_str(text).map_err(|e| {
        let at = offset_of(text, e.line(), e.column());
        let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
        vec![
            Diagnostic::new(
                Code::Json,
                format!("this is not valid JSON: {}", strip_pos(&e)),
            )
            .at_span(Span::new(at, end), "")
            .with_help("check for a missing comma, quote or bracket near here"),
        ]
    })?;
    let mut map = SourceMap::new();
    Indexer {
        text: text.as_bytes(),
        src: text,
        at: 0,
        map: &mut map,
    }
    .index();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("$schema");
    }
    match deserialize::<Playbook>(&value) {
        Ok(p) => Ok((p, map)),
        Err((path, msg)) => {
            // Internally tagged enums hide the path inside a card; read the card again as
            // its variant to find the exact field.
            let (path, msg) = refine(&value, path, msg);
            Err(vec![shape_error(text, &value, &map, &path, &msg)])
        }
    }
}

/// A path as segments: object keys and array indices.
type Path = Vec<String>;

fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, (Path, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut path = Vec::new();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path.push(index.to_string()),
                serde_path_to_error::Segment::Map { key } => path.push(key.clone()),
                serde_path_to_error::Segment::Enum { .. } => {}
                serde_path_to_error::Segment::Unknown => break,
            }
        }
        (path, e.into_inner().to_string())
    })
}

fn refine(root: &Value, path: Path, msg: String) -> (Path, String) {
    if path.len() < 2 || path[0] != "cards" {
        return (path, msg);
    }
    let card_path = path[..2].to_vec();
    let Some(card) = root.pointer(&pointer(&card_path)) else {
        return (path, msg);
    };
    let Some(kind) = card.get("kind").and_then(Value::as_str) else {
        return (path, msg);
    };
    let mut body = card.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("kind");
    }
    let inner = match kind {
        "message" => deserialize::<model::Message>(&body).err(),
        "question" => deserialize::<model::Question>(&body).err(),
        "ask" => deserialize::<model::Ask>(&body).err(),
        "branch" => deserialize::<model::Branch>(&body).err(),
        "livechat" => deserialize::<model::LiveChat>(&body).err(),
        "consent" => deserialize::<model::Consent>(&body).err(),
        "end" => deserialize::<model::End>(&body).err(),
        "capture" => deserialize::<model::Capture>(&body).err().map(|(p, m)| {
            // The record is internally tagged too.
            match (p.first().map(String::as_str), body.get("record")) {
                (Some("record"), Some(record)) => {
                    let ty = record.get("type").and_then(Value::as_str);
                    let mut rec = record.clone();
                    if let Some(o) = rec.as_object_mut() {
                        o.remove("type");
                    }
                    let e = match ty {
                        Some("lead") => deserialize::<model::LeadSpec>(&rec).err(),
                        Some("deal") => deserialize::<model::DealSpec>(&rec).err(),
                        Some("activity") => deserialize::<model::ActivitySpec>(&rec).err(),
                        _ => None,
                    };
                    match e {
                        Some((rp, rm)) => {
                            let mut full = vec!["record".to_owned()];
                            full.extend(rp);
                            (full, rm)
                        }
                        None => (p, m),
                    }
                }
                _ => (p, m),
            }
        }),
        _ => None,
    };
    match inner {
        Some((rest, m)) if !rest.is_empty() => {
            let mut full = card_path;
            full.extend(rest);
            (full, m)
        }
        _ => (path, msg),
    }
}

fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|s| format!("/{}", pointer_segment(s)))
        .collect()
}

/// `cards[2].wait`, the way people read a path.
fn dotted(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if seg.bytes().all(|b| b.is_ascii_digit()) && !seg.is_empty() {
            s.push_str(&format!("[{seg}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

fn shape_error(text: &str, root: &Value, map: &SourceMap, path: &Path, msg: &str) -> Diagnostic {
    let ptr = pointer(path);
    let span = map.find(&ptr).unwrap_or_default();
    let where_ = if path.is_empty() {
        "the playbook".to_owned()
    } else {
        format!("`{}`", dotted(path))
    };
    let mut code = Code::Json;
    let mut label_span = span;
    let mut help =
        "compare with the JSON schema (`playbook schema`) or docs/language.md".to_owned();
    if let Some(s) = root.pointer(&ptr).and_then(Value::as_str) {
        if let Err(e) = s.parse::<Duration>()
            && msg.contains(&e.to_string())
        {
            code = Code::InvalidDuration;
            help = "durations look like `30s`, `5m`, `1h30m` or `2d`".into();
        } else if let Err(e) = Template::new(s)
            && msg.contains(&e.to_string())
        {
            code = Code::InvalidTemplate;
            help = "`{name}` inserts a variable; write `{{` and `}}` for literal braces".into();
            // Point at the brace itself when the string has no escapes to skew offsets.
            let raw = text.get(span.start..span.end).unwrap_or("");
            if !raw.contains('\\') && raw.starts_with('"') {
                let at = span.start + 1 + e.offset();
                label_span = Span::new(at, (at + 1).min(span.end));
            }
        } else if Pattern::new(s).is_err() && path.last().is_some_and(|k| k == "pattern") {
            code = Code::InvalidPattern;
            help = "write a regular expression such as `[A-Z]{2}[0-9]+`".into();
        }
    }
    Diagnostic::new(code, format!("in {where_}: {msg}"))
        .at_span(label_span, "")
        .with_help(help)
}

/// The byte offset of serde_json's 1-based line and column (0 when it has none).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let line_start = text
        .match_indices('\n')
        .nth(line.saturating_sub(2))
        .map_or(0, |(i, _)| if line == 1 { 0 } else { i + 1 });
    let mut at = (line_start + column.saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn strip_pos(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Walks JSON text that serde_json accepted and records each value's span by pointer.
struct Indexer<'a> {
    text: &'a [u8],
    src: &'a str,
    at: usize,
    map: &'a mut SourceMap,
}

impl Indexer<'_> {
    fn index(mut self) {
        self.value(String::new());
    }

    fn ws(&mut self) {
        while self.at < self.text.len() && self.text[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&self) -> u8 {
        self.text.get(self.at).copied().unwrap_or(0)
    }

    fn value(&mut self, ptr: String) {
        self.ws();
        let start = self.at;
        match self.peek() {
            b'{' => {
                self.at += 1;
                loop {
                    self.ws();
                    if self.peek() != b'"' {
                        self.at += 1; // `}` (or stop at the end on text serde rejected)
                        break;
                    }
                    let ks = self.at;
                    self.string();
                    let key: String =
                        serde_json::from_str(&self.src[ks..self.at]).unwrap_or_default();
                    self.ws();
                    self.at += 1; // `:`
                    self.value(format!("{ptr}/{}", pointer_segment(&key)));
                    self.ws();
                    if self.peek() == b',' {
                        self.at += 1;
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut i = 0;
                loop {
                    self.ws();
                    if self.peek() == b']' || self.at >= self.text.len() {
                        self.at += 1;
                        break;
                    }
                    self.value(format!("{ptr}/{i}"));
                    i += 1;
                    self.ws();
                    if self.peek() == b',' {
                        self.at += 1;
                    }
                }
            }
            b'"' => self.string(),
            0 => return,
            _ => {
                while self.at < self.text.len()
                    && !matches!(self.text[self.at], b',' | b'}' | b']')
                    && !self.text[self.at].is_ascii_whitespace()
                {
                    self.at += 1;
                }
            }
        }
        let end = self.at.min(self.text.len());
        self.map.insert(ptr, Span::new(start, end));
    }

    fn string(&mut self) {
        self.at += 1;
        while self.at < self.text.len() && self.text[self.at] != b'"' {
            self.at += if self.text[self.at] == b'\\' { 2 } else { 1 };
        }
        self.at = (self.at + 1).min(self.text.len());
    }
}
