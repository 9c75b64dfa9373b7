//! [`StrategyFactory`] for the native reference strategies (the sandbox
//! crate has the one for components).

use super::run::StrategyFactory;
use crate::{Description, EngineError, Params, Strategy, StrategyInfo};

/// A native reference strategy by name (`ema-crossover`).
pub struct ReferenceFactory {
    name: String,
    description: Description,
}

impl ReferenceFactory {
    pub fn new(name: &str) -> Option<Self> {
        Some(Self {
            name: name.to_string(),
            description: crate::reference::schema(name)?,
        })
    }
}

impl StrategyFactory for ReferenceFactory {
    fn description(&self) -> &Description {
        &self.description
    }

    fn build(&self, params: &Params, _bars: usize) -> Result<Box<dyn Strategy + '_>, EngineError> {
        crate::reference::build(&self.name, params)
            .ok_or_else(|| EngineError::Protocol(format!("no reference strategy `{}`", self.name)))
    }

    fn info(&self, params: &Params) -> StrategyInfo {
        StrategyInfo {
            name: self.description.name.clone(),
            version: self.description.version.clone(),
            sha256: None,
            params: params.to_map(),
        }
    }
}
