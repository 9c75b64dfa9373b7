//! The parameter schema a strategy describes and the validated values it
//! is built from; mirrors the engine's, which validates before the guest sees them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Float,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// One entry of the parameter schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamType,
    pub default: ParamValue,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    pub help: String,
}

impl ParamSpec {
    pub fn int(name: &str, default: i64) -> Self {
        Self::new(name, ParamType::Int, ParamValue::Int(default))
    }
    pub fn float(name: &str, default: f64) -> Self {
        Self::new(name, ParamType::Float, ParamValue::Float(default))
    }
    pub fn bool(name: &str, default: bool) -> Self {
        Self::new(name, ParamType::Bool, ParamValue::Bool(default))
    }
    fn new(name: &str, kind: ParamType, default: ParamValue) -> Self {
        Self {
            name: name.to_string(),
            kind,
            default,
            min: None,
            max: None,
            step: None,
            help: String::new(),
        }
    }
    /// Inclusive bounds.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    /// Grid step an optimizer uses by default.
    pub fn step(mut self, step: f64) -> Self {
        self.step = Some(step);
        self
    }
    pub fn help(mut self, help: &str) -> Self {
        self.help = help.to_string();
        self
    }
}

/// A field of a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub params: Vec<ParamSpec>,
    /// Bar fields the strategy reads; see [`Description::columns`].
    pub columns: Vec<Column>,
}

impl Description {
    pub fn new(name: &str, version: &str, summary: &str) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            summary: summary.to_string(),
            params: Vec::new(),
            columns: Column::ALL.to_vec(),
        }
    }
    /// Declares the only bar fields the strategy reads, so the host sends
    /// just those, plus the opens (each column costs a copy per bar).
    /// Undeclared fields read as NaN (`ts` as 0). All six by default.
    pub fn columns(mut self, columns: &[Column]) -> Self {
        self.columns = columns.to_vec();
        self
    }
    pub fn param(mut self, spec: ParamSpec) -> Self {
        self.params.push(spec);
        self
    }
}

/// Concrete params for one run, as checked by the host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    values: Vec<(String, ParamValue)>,
}

impl Params {
    pub fn new(values: Vec<(String, ParamValue)>) -> Self {
        Self { values }
    }
    /// The schema defaults, for native tests.
    pub fn defaults(description: &Description) -> Self {
        Self::new(
            description
                .params
                .iter()
                .map(|spec| (spec.name.clone(), spec.default))
                .collect(),
        )
    }
    /// Replaces (or adds) one value; for native tests.
    pub fn with(mut self, name: &str, value: ParamValue) -> Self {
        match self.values.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name.to_string(), value)),
        }
        self
    }
    pub fn get(&self, name: &str) -> Option<ParamValue> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| *value)
    }
    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            Some(ParamValue::Int(v)) => Ok(v),
            other => Err(mismatch(name, "int", other)),
        }
    }
    /// A float param; an int value is widened.
    pub fn float(&self, name: &str) -> Result<f64, String> {
        match self.get(name) {
            Some(ParamValue::Float(v)) => Ok(v),
            Some(ParamValue::Int(v)) => Ok(v as f64),
            other => Err(mismatch(name, "float", other)),
        }
    }
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            Some(ParamValue::Bool(v)) => Ok(v),
            other => Err(mismatch(name, "bool", other)),
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, ParamValue)> {
        self.values.iter().map(|(n, v)| (n.as_str(), *v))
    }
}

fn mismatch(name: &str, wanted: &str, got: Option<ParamValue>) -> String {
    match got {
        None => format!("param `{name}` is missing"),
        Some(value) => format!("param `{name}` must be {wanted}, got {value:?}"),
    }
}
