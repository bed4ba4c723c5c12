//! Text with `{variable}` placeholders, parsed once when the playbook is loaded.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::VarName;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text shown as it is (braces already unescaped).
    Text(String),
    /// A placeholder, replaced by the variable's value.
    Var(VarName),
}

/// A text such as `"Demo request ({size})"`.
///
/// `{name}` is replaced by the variable `name`; `{{` and `}}` write literal braces.
/// The source text is kept so that formatting reproduces exactly what the admin wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Template {
    source: String,
    #[serde(skip)]
    parts: Vec<Part>,
}

/// Why a text is not a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("`{{` at byte {0} is never closed; write `{{{{` for a literal brace")]
    Unclosed(usize),
    /// A `}` that closes nothing.
    #[error("`}}` at byte {0} closes nothing; write `}}}}` for a literal brace")]
    Unopened(usize),
    /// `{...}` around something that is not a variable name.
    #[error("`{{{name}}}` at byte {at} is not a variable name (letters, digits and `_`)")]
    BadName {
        /// Byte offset of the `{`.
        at: usize,
        /// What was between the braces.
        name: String,
    },
}

impl TemplateError {
    /// Byte offset in the template text where the problem is.
    pub fn offset(&self) -> usize {
        match self {
            TemplateError::Unclosed(at) | TemplateError::Unopened(at) => *at,
            TemplateError::BadName { at, .. } => *at,
        }
    }
}

impl Template {
    /// Parses a template text.
    pub fn new(source: impl Into<String>) -> Result<Self, TemplateError> {
        let source = source.into();
        let parts = parse(&source)?;
        Ok(Self { source, parts })
    }

    /// The text as written, with placeholders.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed pieces.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The variables this template reads, in order of appearance.
    pub fn vars(&self) -> impl Iterator<Item = &VarName> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// Fills the placeholders; a variable `lookup` does not know becomes the empty string.
    pub fn render<'a>(&self, mut lookup: impl FnMut(&VarName) -> Option<&'a str>) -> String {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(lookup(v).unwrap_or("")),
            }
        }
        out
    }
}

fn parse(s: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err(TemplateError::Unopened(at)),
            '{' => {
                let rest = &s[at + 1..];
                let end = rest.find('}').ok_or(TemplateError::Unclosed(at))?;
                let name = &rest[..end];
                let var = VarName::new(name).map_err(|_| TemplateError::BadName {
                    at,
                    name: name.to_owned(),
                })?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Var(var));
                // Skip the name and the closing brace.
                for _ in 0..=name.chars().count() {
                    chars.next();
                }
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

impl TryFrom<String> for Template {
    type Error = TemplateError;
    fn try_from(s: String) -> Result<Self, TemplateError> {
        Self::new(s)
    }
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.source
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_escapes() {
        let t = Template::new("Demo ({size}) {{x}} for {email}").unwrap();
        let names: Vec<_> = t.vars().map(VarName::as_str).collect();
        assert_eq!(names, ["size", "email"]);
        let out = t.render(|v| (v.as_str() == "size").then_some("11-200"));
        assert_eq!(out, "Demo (11-200) {x} for ");
    }

    #[test]
    fn rejects_broken_braces() {
        assert_eq!(Template::new("a {b"), Err(TemplateError::Unclosed(2)));
        assert_eq!(Template::new("a } b"), Err(TemplateError::Unopened(2)));
        assert!(matches!(
            Template::new("{a b}"),
            Err(TemplateError::BadName { at: 0, .. })
        ));
        assert!(Template::new("caf\u{e9} {x} \u{1F600}").is_ok());
    }
}
