//! How errors reach the user: the whole chain of causes, one line, each cause once
//! (`fleetform_core::error_chain`, the renderer every crate uses).

/// `context: cause: root cause`, without repeating a cause that its parent already quotes.
pub fn render(e: &anyhow::Error) -> String {
    fleetform_core::error_chain::render(e.as_ref())
}
