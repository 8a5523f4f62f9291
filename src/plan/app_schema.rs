//! The app's own `convex/schema.ts`, read but never run and never written: the tables its
//! `defineSchema({...})` writes out and the names it spreads into it.
//!
//! A scan of the source text, not a TypeScript parser: it skips comments, strings and template
//! literals, follows brackets, and reads the entries of the object given to `defineSchema` (or
//! of the `const` object named there). It finds every table written out in that object
//! (`messages: defineTable(...)`, `"messages": messagesTable`, the shorthand `messages,`); a
//! spread (`...authTables`) is seen only as a name, since what it holds is known only when the
//! app runs.

/// What the scan found in a `schema.ts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSchema {
    /// Whether a `defineSchema(...)` call with an object (or a `const` object) was found.
    pub found: bool,
    /// The tables written out in the object, in source order.
    pub tables: Vec<String>,
    /// What the object spreads, as written: `authTables`, `m.migrateTables`.
    pub spreads: Vec<String>,
}

impl AppSchema {
    /// Whether the object spreads `export` (also as `module.export`).
    pub fn spreads(&self, export: &str) -> bool {
        self.spreads.iter().any(|s| s.rsplit('.').next() == Some(export))
    }
}

/// Reads the `defineSchema` object of `source`.
pub fn scan(source: &str) -> AppSchema {
    let tokens = tokens(source);
    let Some(call) = tokens
        .windows(2)
        .position(|w| w[0] == Token::Ident("defineSchema".into()) && w[1] == Token::Punct('('))
    else {
        return AppSchema::default();
    };
    let argument = call + 2;
    let start = match tokens.get(argument) {
        Some(Token::Punct('{')) => argument,
        // `defineSchema(tables)`: the object given to `const tables = {...}`.
        Some(Token::Ident(name)) => {
            let declared = tokens.windows(3).position(|w| {
                w[0] == Token::Ident(name.clone())
                    && matches!(w[1], Token::Punct('=') | Token::Punct(':'))
                    && w[2] == Token::Punct('{')
            });
            match declared {
                Some(at) if tokens[at + 1] == Token::Punct('=') => at + 2,
                _ => return AppSchema::default(),
            }
        }
        _ => return AppSchema::default(),
    };
    let mut schema = AppSchema { found: true, ..AppSchema::default() };
    entries(&tokens[start + 1..], &mut schema);
    schema
}

/// Reads the entries of an object literal whose `{` was just passed, up to its `}`.
fn entries(tokens: &[Token], schema: &mut AppSchema) {
    let mut at = 0;
    while at < tokens.len() {
        match &tokens[at] {
            Token::Punct('}') => return,
            Token::Punct(',') => at += 1,
            Token::Spread => {
                let end = value_end(tokens, at + 1);
                let name: Vec<&str> = tokens[at + 1..end]
                    .iter()
                    .map(|t| match t {
                        Token::Ident(name) => name.as_str(),
                        Token::Punct('.') => ".",
                        _ => "?",
                    })
                    .collect();
                schema.spreads.push(name.concat());
                at = end;
            }
            token => {
                let (key, after) = match token {
                    Token::Ident(name) | Token::Str(name) => (Some(name.clone()), at + 1),
                    Token::Punct('[') => {
                        let close = closing(tokens, at);
                        // `["name"]: ...`; a computed key of any other kind is not a name.
                        let key = match &tokens[at + 1..close] {
                            [Token::Str(name)] => Some(name.clone()),
                            _ => None,
                        };
                        (key, close + 1)
                    }
                    _ => (None, at + 1),
                };
                match tokens.get(after) {
                    Some(Token::Punct(':')) => {
                        schema.tables.extend(key);
                        at = value_end(tokens, after + 1);
                    }
                    Some(Token::Punct(',' | '}')) => {
                        schema.tables.extend(key);
                        at = after;
                    }
                    _ => at = value_end(tokens, after),
                }
            }
        }
    }
}

/// The index of the `,` or closing bracket that ends the value starting at `from`, brackets
/// inside it followed (or the end of `tokens`).
fn value_end(tokens: &[Token], from: usize) -> usize {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().skip(from) {
        match token {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') if depth == 0 => return at,
            Token::Punct(')' | ']' | '}') => depth -= 1,
            Token::Punct(',') if depth == 0 => return at,
            _ => {}
        }
    }
    tokens.len()
}

/// The index of the bracket closing the one at `open` (or the end of `tokens`).
fn closing(tokens: &[Token], open: usize) -> usize {
    value_end(tokens, open + 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// A string literal's text (escapes kept as written).
    Str(String),
    /// A template literal, whatever it holds.
    Template,
    Spread,
    Punct(char),
}

/// The tokens of `source`, comments and white space left out.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        match c {
            c if c.is_whitespace() => at += 1,
            '/' if next == Some('/') => {
                while at < chars.len() && chars[at] != '\n' {
                    at += 1;
                }
            }
            '/' if next == Some('*') => {
                at += 2;
                while at < chars.len() && !(chars[at] == '*' && chars.get(at + 1) == Some(&'/')) {
                    at += 1;
                }
                at += 2;
            }
            '"' | '\'' => {
                let (text, end) = quoted(&chars, at);
                tokens.push(Token::Str(text));
                at = end;
            }
            '`' => {
                at = template_end(&chars, at);
                tokens.push(Token::Template);
            }
            '.' if next == Some('.') && chars.get(at + 2) == Some(&'.') => {
                tokens.push(Token::Spread);
                at += 3;
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let start = at;
                while at < chars.len()
                    && (chars[at].is_alphanumeric() || chars[at] == '_' || chars[at] == '$')
                {
                    at += 1;
                }
                tokens.push(Token::Ident(chars[start..at].iter().collect()));
            }
            c => {
                tokens.push(Token::Punct(c));
                at += 1;
            }
        }
    }
    tokens
}

/// The text of the string literal opening at `start`, and the index past its closing quote.
fn quoted(chars: &[char], start: usize) -> (String, usize) {
    let quote = chars[start];
    let mut text = String::new();
    let mut at = start + 1;
    while at < chars.len() && chars[at] != quote && chars[at] != '\n' {
        if chars[at] == '\\' && at + 1 < chars.len() {
            text.push(chars[at]);
            at += 1;
        }
        text.push(chars[at]);
        at += 1;
    }
    (text, at + 1)
}

/// The index past the template literal opening at `start`: `${...}` followed, strings and
/// nested templates inside it included.
fn template_end(chars: &[char], start: usize) -> usize {
    let mut at = start + 1;
    while at < chars.len() {
        match chars[at] {
            '\\' => at += 2,
            '`' => return at + 1,
            '$' if chars.get(at + 1) == Some(&'{') => {
                let mut depth = 1;
                at += 2;
                while at < chars.len() && depth > 0 {
                    match chars[at] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        '"' | '\'' => at = quoted(chars, at).1 - 1,
                        '`' => at = template_end(chars, at) - 1,
                        _ => {}
                    }
                    at += 1;
                }
            }
            _ => at += 1,
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(source: &str) -> Vec<String> {
        let schema = scan(source);
        assert!(schema.found, "{source}");
        schema.tables
    }

    #[test]
    fn tables_written_out_in_every_form_are_found() {
        let source = r#"
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
import { authTables } from "@convex-dev/auth/server";
import { migrateTables } from "./migrateTables";

const documents = defineTable({ title: v.string() });

export default defineSchema({
  ...authTables,
  // users: defineTable({}), a comment
  /* posts: defineTable({}) */
  messages: defineTable({
    body: v.string(),
    meta: v.object({ inner: v.optional(v.string()), "quoted}": v.any() }),
    channel: v.union(v.literal("a,b"), v.literal(`x${"}"}y`)),
  })
    .index("by_channel", ["channel"])
    .searchIndex("search_body", { searchField: "body" }),
  "quoted-name": defineTable({ n: v.number() }),
  'single': defineTable({}),
  ["computed"]: defineTable({}),
  documents,
  $odd_1: defineTable({ x: v.array(v.string()) }),
  ...migrateTables,
}, { schemaValidation: true });
"#;
        let schema = scan(source);
        assert_eq!(
            schema.tables,
            ["messages", "quoted-name", "single", "computed", "documents", "$odd_1"]
        );
        assert_eq!(schema.spreads, ["authTables", "migrateTables"]);
        assert!(schema.spreads("migrateTables"));
        assert!(
            !scan("export default defineSchema({ a: defineTable({}) });").spreads("migrateTables")
        );
    }

    #[test]
    fn a_spread_through_a_namespace_counts() {
        let schema =
            scan("import * as m from './migrateTables';\ndefineSchema({ ...m.migrateTables })");
        assert_eq!(schema.spreads, ["m.migrateTables"]);
        assert!(schema.spreads("migrateTables"));
    }

    #[test]
    fn the_object_may_be_declared_first() {
        let source = "const tables = {\n  users: defineTable({}),\n  ...migrateTables,\n};\nexport default defineSchema(tables);\n";
        assert_eq!(tables(source), ["users"]);
        assert!(scan(source).spreads("migrateTables"));
    }

    #[test]
    fn without_define_schema_nothing_is_found() {
        for source in [
            "export default {};",
            "export default defineSchema(buildTables());",
            "// defineSchema({ users: defineTable({}) })",
            "const s = \"defineSchema({ users: 1 })\";",
        ] {
            assert_eq!(scan(source), AppSchema::default(), "{source}");
        }
    }

    #[test]
    fn unfinished_source_does_not_panic() {
        for source in [
            "defineSchema({",
            "defineSchema({ a: defineTable({",
            "defineSchema({ \"a",
            "defineSchema({ `${",
            "defineSchema({ [",
            "defineSchema({ ...",
        ] {
            let _ = scan(source);
        }
        assert_eq!(tables("defineSchema({ a: defineTable({"), ["a"]);
    }
}
