//! Parameter schemas and the validation of submitted params against them.
//! Every param a strategy receives has been checked here first.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Int,
    Float,
    Bool,
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl ParamValue {
    pub fn kind(self) -> ParamType {
        match self {
            ParamValue::Int(_) => ParamType::Int,
            ParamValue::Float(_) => ParamType::Float,
            ParamValue::Bool(_) => ParamType::Bool,
        }
    }
    fn as_f64(self) -> Option<f64> {
        match self {
            ParamValue::Int(v) => Some(v as f64),
            ParamValue::Float(v) => Some(v),
            ParamValue::Bool(_) => None,
        }
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParamType,
    pub default: ParamValue,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    pub help: String,
}

/// A field of a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Column {
    Ts,
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Column {
    pub const ALL: [Column; 6] = [
        Column::Ts,
        Column::Open,
        Column::High,
        Column::Low,
        Column::Close,
        Column::Volume,
    ];
}

/// What a strategy says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub params: Vec<ParamSpec>,
    /// The bar fields the strategy reads (the sandbox sends only these).
    pub columns: Vec<Column>,
}

impl Description {
    /// Checks the schema itself: unique names, defaults of the declared
    /// type and within the declared bounds.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for spec in &self.params {
            if spec.name.is_empty() || !seen.insert(spec.name.as_str()) {
                return Err(format!("param name `{}` is empty or repeated", spec.name));
            }
            if spec.default.kind() != spec.kind {
                return Err(format!(
                    "param `{}` is declared {} but its default {} is {}",
                    spec.name,
                    spec.kind,
                    spec.default,
                    spec.default.kind()
                ));
            }
            if let (Some(min), Some(max)) = (spec.min, spec.max) {
                if min > max {
                    return Err(format!(
                        "param `{}` has min {min} above max {max}",
                        spec.name
                    ));
                }
            }
            check_bounds(spec, spec.default)
                .map_err(|e| format!("default of param `{}`: {e}", spec.name))?;
        }
        Ok(())
    }
}

/// A submitted value before validation: text from the command line, or
/// JSON from the API.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamInput {
    Text(String),
    Json(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown param `{name}`; this strategy takes: {known}")]
    Unknown { name: String, known: String },
    #[error("param `{name}` must be {expected}, got {got}")]
    WrongType {
        name: String,
        expected: ParamType,
        got: String,
    },
    #[error("param `{name}` = {value} is out of range: {reason}")]
    OutOfRange {
        name: String,
        value: String,
        reason: String,
    },
}

impl ParamError {
    /// The param the error is about.
    pub fn field(&self) -> &str {
        match self {
            ParamError::Unknown { name, .. }
            | ParamError::WrongType { name, .. }
            | ParamError::OutOfRange { name, .. } => name,
        }
    }
}

/// Validated params in schema order, every schema param present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params(pub Vec<(String, ParamValue)>);

impl Params {
    /// Fills in defaults and checks types and bounds. Errors name the param.
    pub fn validate(
        schema: &[ParamSpec],
        inputs: &BTreeMap<String, ParamInput>,
    ) -> Result<Params, ParamError> {
        for name in inputs.keys() {
            if !schema.iter().any(|spec| &spec.name == name) {
                let known: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
                return Err(ParamError::Unknown {
                    name: name.clone(),
                    known: if known.is_empty() {
                        "no params".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        let mut values = Vec::with_capacity(schema.len());
        for spec in schema {
            let value = match inputs.get(&spec.name) {
                None => spec.default,
                Some(input) => {
                    let value = coerce(spec, input)?;
                    check_bounds(spec, value).map_err(|reason| ParamError::OutOfRange {
                        name: spec.name.clone(),
                        value: value.to_string(),
                        reason,
                    })?;
                    value
                }
            };
            values.push((spec.name.clone(), value));
        }
        Ok(Params(values))
    }

    pub fn get(&self, name: &str) -> Option<ParamValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Name to value, in name order, for reports.
    pub fn to_map(&self) -> BTreeMap<String, ParamValue> {
        self.0.iter().cloned().collect()
    }
}

fn coerce(spec: &ParamSpec, input: &ParamInput) -> Result<ParamValue, ParamError> {
    let wrong = |got: String| ParamError::WrongType {
        name: spec.name.clone(),
        expected: spec.kind,
        got,
    };
    match input {
        ParamInput::Text(text) => {
            let text = text.trim();
            match spec.kind {
                ParamType::Int => text
                    .parse::<i64>()
                    .map(ParamValue::Int)
                    .map_err(|_| wrong(format!("`{text}`"))),
                ParamType::Float => match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(ParamValue::Float(v)),
                    _ => Err(wrong(format!("`{text}`"))),
                },
                ParamType::Bool => match text {
                    "true" | "1" | "yes" => Ok(ParamValue::Bool(true)),
                    "false" | "0" | "no" => Ok(ParamValue::Bool(false)),
                    _ => Err(wrong(format!("`{text}`"))),
                },
            }
        }
        ParamInput::Json(json) => {
            let got = || format!("{json}");
            match spec.kind {
                ParamType::Int => {
                    if let Some(v) = json.as_i64() {
                        Ok(ParamValue::Int(v))
                    } else {
                        // 12.0 is accepted as 12; 12.5 is not an int.
                        match json.as_f64() {
                            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                                Ok(ParamValue::Int(f as i64))
                            }
                            _ => Err(wrong(got())),
                        }
                    }
                }
                ParamType::Float => match json.as_f64() {
                    Some(v) => Ok(ParamValue::Float(v)),
                    None => Err(wrong(got())),
                },
                ParamType::Bool => json
                    .as_bool()
                    .map(ParamValue::Bool)
                    .ok_or_else(|| wrong(got())),
            }
        }
    }
}

fn check_bounds(spec: &ParamSpec, value: ParamValue) -> Result<(), String> {
    let Some(v) = value.as_f64() else {
        return Ok(());
    };
    if let Some(min) = spec.min {
        if v < min {
            return Err(format!("below its minimum {min}"));
        }
    }
    if let Some(max) = spec.max {
        if v > max {
            return Err(format!("above its maximum {max}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                name: "fast_period".into(),
                kind: ParamType::Int,
                default: ParamValue::Int(12),
                min: Some(1.0),
                max: Some(100.0),
                step: Some(1.0),
                help: String::new(),
            },
            ParamSpec {
                name: "threshold".into(),
                kind: ParamType::Float,
                default: ParamValue::Float(0.5),
                min: None,
                max: None,
                step: None,
                help: String::new(),
            },
            ParamSpec {
                name: "allow_short".into(),
                kind: ParamType::Bool,
                default: ParamValue::Bool(false),
                min: None,
                max: None,
                step: None,
                help: String::new(),
            },
        ]
    }

    fn text(pairs: &[(&str, &str)]) -> BTreeMap<String, ParamInput> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ParamInput::Text(v.to_string())))
            .collect()
    }

    #[test]
    fn defaults_fill_missing_params_in_schema_order() {
        let params = Params::validate(&schema(), &text(&[("allow_short", "true")])).unwrap();
        assert_eq!(
            params.0,
            vec![
                ("fast_period".into(), ParamValue::Int(12)),
                ("threshold".into(), ParamValue::Float(0.5)),
                ("allow_short".into(), ParamValue::Bool(true)),
            ]
        );
    }

    #[test]
    fn unknown_param_names_itself_and_the_known_ones() {
        let err = Params::validate(&schema(), &text(&[("fast", "3")])).unwrap_err();
        assert_eq!(err.field(), "fast");
        assert!(err
            .to_string()
            .contains("fast_period, threshold, allow_short"));
    }

    #[test]
    fn wrong_types_are_rejected() {
        for (name, value) in [
            ("fast_period", "1.5"),
            ("fast_period", "abc"),
            ("threshold", "x"),
            ("allow_short", "maybe"),
        ] {
            let err = Params::validate(&schema(), &text(&[(name, value)])).unwrap_err();
            assert!(matches!(err, ParamError::WrongType { .. }), "{err}");
            assert_eq!(err.field(), name);
        }
        let json: BTreeMap<_, _> = [(
            "fast_period".to_string(),
            ParamInput::Json(serde_json::json!("12")),
        )]
        .into();
        assert!(Params::validate(&schema(), &json).is_err());
    }

    #[test]
    fn json_whole_float_is_an_int() {
        let json: BTreeMap<_, _> = [(
            "fast_period".to_string(),
            ParamInput::Json(serde_json::json!(12.0)),
        )]
        .into();
        let params = Params::validate(&schema(), &json).unwrap();
        assert_eq!(params.get("fast_period"), Some(ParamValue::Int(12)));
    }

    #[test]
    fn out_of_range_is_rejected_with_the_bound() {
        let err = Params::validate(&schema(), &text(&[("fast_period", "0")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "param `fast_period` = 0 is out of range: below its minimum 1"
        );
        let err = Params::validate(&schema(), &text(&[("fast_period", "101")])).unwrap_err();
        assert!(err.to_string().contains("above its maximum 100"));
    }

    #[test]
    fn schema_check_catches_bad_defaults() {
        let mut bad = schema();
        bad[0].default = ParamValue::Int(500);
        let d = Description {
            name: "x".into(),
            version: "1".into(),
            summary: String::new(),
            params: bad,
            columns: Column::ALL.to_vec(),
        };
        assert!(d.check().unwrap_err().contains("fast_period"));
    }
}
