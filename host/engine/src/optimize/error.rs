/// Bad optimization input. Every variant names the field it is about, in
/// the request's own terms (`search_space.fast_period.step`,
/// `objective.metric`, `constraint`, `holdout.split`, ...).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct OptimizeError {
    pub field: String,
    pub message: String,
}

impl OptimizeError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
