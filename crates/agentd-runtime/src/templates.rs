//! Prompt templates: named minijinja templates with `{{variable}}`
//! placeholders, stored per tenant as a document kind, rendered strictly (a
//! missing variable is an error naming it, never a silent blank). Tenants'
//! templates render in a worker process (`template_worker`).

use agentd_core::ErrorCode;
pub use agentd_core::Template;
use serde_json::Value;

use crate::RuntimeError;
use crate::documents::{DocKind, DocumentKind};

/// Rendering steps a template may take (loops over huge inputs stop here).
const FUEL: u64 = 100_000;
/// Largest template accepted.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Largest text a render may produce (counted while it renders).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// Operators one `{{ … }}` or `{% … %}` tag may chain. minijinja guards
/// nesting in its parser, but filter, attribute and operator chains build
/// an AST as deep as they are long, and compiling or dropping it recurses.
const MAX_TAG_OPERATORS: usize = 256;
/// Names and operators in all of a template's tags together.
const MAX_TEMPLATE_OPERATORS: usize = 50_000;
/// Stack for parsing and rendering: far above what the bounds above need,
/// so nothing a tenant writes can overflow it (and never a tokio worker's).
const TEMPLATE_STACK: usize = 16 * 1024 * 1024;

/// Refuses templates too large or whose tags chain too many operators,
/// before the parser sees them.
pub(crate) fn check_complexity(content: &str) -> Result<(), RuntimeError> {
    if content.len() > MAX_TEMPLATE_BYTES {
        return Err(RuntimeError::bad(
            ErrorCode::TemplateTooLarge,
            format!("templates are limited to {MAX_TEMPLATE_BYTES} bytes"),
        ));
    }
    let b = content.as_bytes();
    let too_complex = |what: String| Err(RuntimeError::bad(ErrorCode::TemplateTooComplex, what));
    // Inside a tag, brackets nest: a `}}` closes the tag only outside them,
    // as minijinja's lexer reads it (`{{ {'a': {'b': 1}}|e }}` is one tag).
    let (mut i, mut tag, mut ops, mut total, mut depth) = (0, false, 0usize, 0usize, 0usize);
    let (mut quote, mut word) = (None::<u8>, 0usize);
    while i < b.len() {
        let c = b[i];
        if !tag {
            if c == b'{' && matches!(b.get(i + 1), Some(b'{' | b'%')) {
                (tag, ops, depth, i) = (true, 0, 0, i + 2);
                continue;
            }
        } else if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else if depth == 0 && matches!(c, b'}' | b'%') && b.get(i + 1) == Some(&b'}') {
            (tag, i) = (false, i + 2);
            continue;
        } else {
            let is_word = c.is_ascii_alphanumeric() || c == b'_';
            if is_word {
                word += 1;
            } else {
                // Each name or literal and each operator is a node of the tree.
                let mut n = usize::from(word > 0);
                word = 0;
                match c {
                    b'"' | b'\'' => quote = Some(c),
                    b'{' | b'(' | b'[' => {
                        depth += 1;
                        n += 1;
                    }
                    b'}' | b')' | b']' => depth = depth.saturating_sub(1),
                    b'|' | b'.' | b'~' | b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b',' | b':' => {
                        n += 1
                    }
                    _ => {}
                }
                ops += n;
                total += n;
            }
            if ops > MAX_TAG_OPERATORS {
                return too_complex(format!("a template tag may hold at most {MAX_TAG_OPERATORS} names and operators"));
            }
            if total > MAX_TEMPLATE_OPERATORS {
                return too_complex(format!(
                    "a template may hold at most {MAX_TEMPLATE_OPERATORS} names and operators"
                ));
            }
        }
        i += 1;
    }
    Ok(())
}

/// Runs template work on a thread of its own with a known, large stack.
fn on_template_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, RuntimeError> {
    std::thread::Builder::new()
        .name("agentd-template".into())
        .stack_size(TEMPLATE_STACK)
        .spawn(f)
        .map_err(|e| RuntimeError::bad(ErrorCode::TemplateError, format!("template thread: {e}")))?
        .join()
        .map_err(|_| RuntimeError::bad(ErrorCode::InvalidTemplate, "the template could not be processed"))
}

/// The variables a template reads, or why it does not parse.
pub fn variables(content: &str) -> Result<Vec<String>, RuntimeError> {
    check_complexity(content)?;
    let content = content.to_string();
    on_template_stack(move || variables_unchecked(&content))?
}

fn variables_unchecked(content: &str) -> Result<Vec<String>, RuntimeError> {
    let env = env();
    let t = parse(&env, content)?;
    Ok(variables_of(&t))
}

fn parse<'e, 's>(
    env: &'e minijinja::Environment<'static>,
    content: &'s str,
) -> Result<minijinja::Template<'e, 's>, RuntimeError> {
    env.template_from_str(content)
        .map_err(|e| RuntimeError::bad(ErrorCode::InvalidTemplate, format!("the template does not parse: {e}")))
}

/// The variables a parsed template reads, sorted.
fn variables_of(t: &minijinja::Template<'_, '_>) -> Vec<String> {
    // Builtin functions show up as undeclared names too; they are not variables.
    const BUILTINS: &[&str] = &["range", "dict", "debug", "namespace", "lipsum", "cycler", "joiner"];
    let mut v: Vec<String> =
        t.undeclared_variables(false).into_iter().filter(|n| !BUILTINS.contains(&n.as_str())).collect();
    v.sort();
    v
}

pub(crate) fn object_args(arguments: &Value) -> Result<Value, RuntimeError> {
    match arguments {
        Value::Object(_) => Ok(arguments.clone()),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(RuntimeError::bad(ErrorCode::InvalidArguments, "`arguments` must be a JSON object")),
    }
}

/// Renders on a thread of this process: for the operator's own files read
/// at start, and inside the worker.
pub fn render_here(name: &str, content: &str, arguments: &Value) -> Result<String, RuntimeError> {
    let args = object_args(arguments)?;
    check_complexity(content)?;
    let (name, content) = (name.to_string(), content.to_string());
    on_template_stack(move || render_unchecked(&name, &content, &args))?
}

/// Output that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Capped {
    out: Vec<u8>,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.over = true;
            return Err(std::io::Error::other("template output over its cap"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn render_unchecked(name: &str, content: &str, args: &Value) -> Result<String, RuntimeError> {
    // Parsed once: the same template names its variables and renders.
    let env = env();
    let t = parse(&env, content)?;
    for var in variables_of(&t) {
        if args.get(&var).is_none() {
            return Err(RuntimeError::MissingVariable { template: name.to_string(), variable: var });
        }
    }
    let mut out = Capped { out: Vec::new(), over: false };
    let rendered = t.render_captured_to(args, &mut out).map(drop);
    if out.over {
        return Err(RuntimeError::bad(
            ErrorCode::TemplateTooLarge,
            format!("template {name} renders to more than {MAX_OUTPUT_BYTES} bytes"),
        ));
    }
    rendered.map_err(|e| match e.kind() {
        // A nested value that is missing (`{{ user.name }}` without `name`).
        minijinja::ErrorKind::UndefinedError => {
            RuntimeError::bad(ErrorCode::MissingVariable, format!("template {name}: {e}"))
        }
        _ => RuntimeError::bad(ErrorCode::TemplateError, format!("template {name} failed to render: {e}")),
    })?;
    String::from_utf8(out.out).map_err(|_| RuntimeError::bad(ErrorCode::TemplateError, "the output is not UTF-8"))
}

impl DocumentKind for Template {
    const KIND: DocKind = DocKind::PROMPT_TEMPLATE;
    const NOUN: &'static str = "prompt template";
    const NOT_FOUND: ErrorCode = ErrorCode::TemplateNotFound;
    const EXISTS: ErrorCode = ErrorCode::TemplateExists;

    /// A template parses and stays within its bounds; its variables are worked out here.
    fn check(&mut self) -> Result<(), RuntimeError> {
        self.variables = variables(&self.content)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_strictly_and_names_missing_variables() {
        let c = "Hello {{ name }}, you have {{ items | length }} items{% if vip %} (VIP){% endif %}.";
        assert_eq!(variables(c).unwrap(), ["items", "name", "vip"]);
        let out = render_here("t", c, &json!({"name": "Ada", "items": [1, 2], "vip": true})).unwrap();
        assert_eq!(out, "Hello Ada, you have 2 items (VIP).");
        match render_here("t", c, &json!({"name": "Ada", "vip": false})) {
            Err(RuntimeError::MissingVariable { variable, .. }) => assert_eq!(variable, "items"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            render_here("t", "{{ user.name }}", &json!({"user": {}})),
            Err(RuntimeError::Invalid { code: ErrorCode::MissingVariable, .. })
        ));
        assert!(variables("{% if %}").is_err());
        assert!(matches!(
            render_here("t", "{% for i in range(100000000) %}x{% endfor %}", &json!({})),
            Err(RuntimeError::Invalid { .. })
        ));
    }

    fn code(r: Result<Vec<String>, RuntimeError>) -> &'static str {
        match r {
            Err(RuntimeError::Invalid { code, .. }) => code.as_str(),
            Ok(_) => "ok",
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn long_chains_are_refused_before_they_reach_the_parser() {
        // Hardening finding 1: 10,000 chained filters overflowed a worker's stack.
        for (unit, n) in [("|upper", 10_000), (".a", 20_000), ("[0]", 10_000), (" ~ x", 10_000), ("(", 5_000)] {
            let t = format!("{{{{ x{} }}}}", unit.repeat(n));
            assert_eq!(code(variables(&t)), "template_too_complex", "{unit}");
        }
        // A dict literal's braces do not end the tag early (a bypass found in review).
        let t = format!("{{{{ {{'a': {{'b': 1}}}}{} }}}}", "|e".repeat(100_000));
        assert_eq!(code(variables(&t)), "template_too_complex");
        let many = "{{ a.b|c }}".repeat(20_000);
        assert_eq!(code(variables(&many)), "template_too_complex");
        let blocks = "{% if x %}".repeat(5_000);
        assert_ne!(code(variables(&blocks)), "ok");
        // Ordinary templates, and operators inside strings, are fine.
        assert_eq!(code(variables(&format!("{{{{ x{} }}}}", "|upper".repeat(100)))), "ok");
        assert_eq!(code(variables(&format!("{{{{ \"{}\" ~ x }}}}", "|.".repeat(5_000)))), "ok");
        assert_eq!(code(variables(&format!("{}{{{{ x }}}}", "a|b.c ".repeat(10_000)))), "ok");
        // Recursion at render time stops at minijinja's limit or the fuel, on the big stack.
        let r = render_here("t", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", &serde_json::json!({}));
        assert!(matches!(r, Err(RuntimeError::Invalid { .. })), "{r:?}");
    }
}
