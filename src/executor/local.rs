//! The local executor: each instance runs on a thread of its own in this process (a `command`
//! stage's process under its supervisor), through `instance::run`.

use super::{Env, Executor, Finished, Task};
use std::sync::mpsc::Sender;
use std::thread::Scope;

/// Runs instances on this machine.
pub struct Local;

impl Executor for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn on_this_machine(&self) -> bool {
        true
    }

    fn start<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        env: &'env Env<'env>,
        tasks: Vec<Task<'env>>,
        done: &Sender<Finished>,
    ) {
        for task in tasks {
            let done = done.clone();
            scope.spawn(move || {
                let r = crate::instance::run(env.proj, &task.job(), env.staging);
                task.finish(&done, r);
            });
        }
    }
}
