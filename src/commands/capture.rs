//! `lbctl capture`: placeholder until sys/capture.rs lands (being written).

use super::Env;
use crate::cli::CaptureArgs;
use crate::error::Result;
use crate::{Ctx, Outcome};

pub fn run(_ctx: &Ctx, _env: &Env, _a: CaptureArgs) -> Result<Outcome> {
    Err(crate::usage!("capture is not implemented yet"))
}
