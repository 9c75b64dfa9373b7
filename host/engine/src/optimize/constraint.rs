//! A constraint between params, e.g. `fast_period < slow_period`: one or
//! more comparisons `operand op operand` joined by `and`, where an operand
//! is a param name, a number, `true` or `false`. Combinations that fail it
//! are never run.

use super::error::OptimizeError;
use crate::{ParamSpec, ParamValue, Params};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Param(String),
    Number(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    text: String,
    terms: Vec<(Operand, Op, Operand)>,
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

const FIELD: &str = "constraint";

impl Constraint {
    /// Parses `text`; every name must be a param of `schema`.
    pub fn parse(text: &str, schema: &[ParamSpec]) -> Result<Constraint, OptimizeError> {
        let bad = |message: String| OptimizeError::new(FIELD, message);
        let tokens = tokenize(text).map_err(bad)?;
        if tokens.is_empty() {
            return Err(bad(
                "is empty; write e.g. `fast_period < slow_period`".into()
            ));
        }
        let mut terms = Vec::new();
        for (i, term) in tokens.split(|t| t == "and").enumerate() {
            let [left, op, right] = term else {
                return Err(bad(format!(
                    "comparison {} is `{}`; expected `name op name-or-number` with op one of \
                     < <= > >= == !=, joined by `and`",
                    i + 1,
                    term.join(" ")
                )));
            };
            let op = match op.as_str() {
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "==" => Op::Eq,
                "!=" => Op::Ne,
                other => return Err(bad(format!("unknown operator `{other}`"))),
            };
            let operand = |token: &str| -> Result<Operand, OptimizeError> {
                match token {
                    "true" => return Ok(Operand::Number(1.0)),
                    "false" => return Ok(Operand::Number(0.0)),
                    _ => {}
                }
                if let Ok(v) = token.parse::<f64>() {
                    if v.is_finite() {
                        return Ok(Operand::Number(v));
                    }
                }
                if schema.iter().any(|s| s.name == token) {
                    return Ok(Operand::Param(token.to_string()));
                }
                let known: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
                Err(bad(format!(
                    "unknown param `{token}`; this strategy takes: {}",
                    known.join(", ")
                )))
            };
            terms.push((operand(left)?, op, operand(right)?));
        }
        Ok(Constraint {
            text: text.trim().to_string(),
            terms,
        })
    }

    /// Whether `params` satisfy every comparison.
    pub fn holds(&self, params: &Params) -> bool {
        let value = |operand: &Operand| match operand {
            Operand::Number(v) => Some(*v),
            Operand::Param(name) => params.get(name).map(|v| match v {
                ParamValue::Int(i) => i as f64,
                ParamValue::Float(f) => f,
                ParamValue::Bool(b) => f64::from(u8::from(b)),
            }),
        };
        self.terms.iter().all(|(left, op, right)| {
            let (Some(a), Some(b)) = (value(left), value(right)) else {
                return false;
            };
            match op {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Eq => a == b,
                Op::Ne => a != b,
            }
        })
    }
}

/// Names, numbers and operators; whitespace between them is optional.
fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "<>=!".contains(c) {
            let two = chars.get(i + 1) == Some(&'=');
            let op: String = chars[i..i + if two { 2 } else { 1 }].iter().collect();
            if op == "=" || op == "!" {
                return Err(format!("unknown operator `{op}` (use == or !=)"));
            }
            i += op.len();
            tokens.push(op);
        } else if c.is_ascii_alphanumeric() || "_.-+".contains(c) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.-+".contains(chars[i]))
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamValue::{Bool, Int};

    fn schema() -> Vec<ParamSpec> {
        crate::reference::schema("ema-crossover").unwrap().params
    }

    fn params(fast: i64, slow: i64, short: bool) -> Params {
        Params(vec![
            ("fast_period".into(), Int(fast)),
            ("slow_period".into(), Int(slow)),
            ("allow_short".into(), Bool(short)),
        ])
    }

    #[test]
    fn comparisons_between_params_and_numbers() {
        let c = Constraint::parse("fast_period < slow_period", &schema()).unwrap();
        assert!(c.holds(&params(5, 10, false)));
        assert!(!c.holds(&params(10, 10, false)));
        assert!(!c.holds(&params(11, 10, false)));
        let c =
            Constraint::parse("fast_period<=slow_period and slow_period != 30", &schema()).unwrap();
        assert!(c.holds(&params(10, 10, false)));
        assert!(!c.holds(&params(10, 30, false)));
        let c = Constraint::parse("allow_short == true and 3 >= fast_period", &schema()).unwrap();
        assert!(c.holds(&params(3, 1, true)));
        assert!(!c.holds(&params(4, 1, true)));
        assert!(!c.holds(&params(3, 1, false)));
        let c = Constraint::parse("slow_period > 2.5", &schema()).unwrap();
        assert!(c.holds(&params(1, 3, false)));
        assert!(!c.holds(&params(1, 2, false)));
        assert_eq!(c.to_string(), "slow_period > 2.5");
    }

    #[test]
    fn errors_name_the_constraint_and_say_why() {
        for (text, needle) in [
            ("fast < slow_period", "unknown param `fast`"),
            ("fast_period < slow_period and", "comparison 2"),
            ("fast_period slow_period", "comparison 1"),
            ("fast_period = slow_period", "use == or !="),
            ("fast_period < slow_period or 1 < 2", "comparison 1"),
            ("fast_period < (slow_period)", "unexpected character `(`"),
            ("", "is empty"),
        ] {
            let err = Constraint::parse(text, &schema()).unwrap_err();
            assert_eq!(err.field, "constraint");
            assert!(err.message.contains(needle), "{text}: {}", err.message);
        }
    }
}
