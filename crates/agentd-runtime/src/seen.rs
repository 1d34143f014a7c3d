//! What the model saw: a past request of a run, rebuilt from the journal
//! with the functions the run loop builds requests with (`system_text`,
//! `request_messages`, `mentioned_skill`), and counted part by part with
//! the context manager's counter.

pub use agentd_core::{ContextTokens, ModelContext};
use agentd_core::{ErrorCode, EventType, Message, Role, Tenant, ToolSpec};

use crate::fold::Folded;
use crate::request::{mentioned_skill, request_messages, system_text};
use crate::{Runtime, RuntimeError};

impl Runtime {
    /// The request of `step` (the last step when `None`) of a run.
    pub async fn model_context(
        &self,
        t: &Tenant,
        run_id: &str,
        step: Option<u32>,
    ) -> Result<ModelContext, RuntimeError> {
        let run = self.get_run(t, run_id).await?;
        let events = self.all_events(t, run_id).await?;
        let f = Folded::from_events(&events);
        let step = step.unwrap_or(f.step.max(1));
        let of_step = |e: &&agentd_core::StoredEvent| e.data["step"].as_u64() == Some(u64::from(step));
        let started =
            events.iter().filter(of_step).find(|e| e.event_type() == Some(EventType::StepStarted)).ok_or_else(
                || RuntimeError::not_found(ErrorCode::NotFound, format!("run {run_id} has no step {step}")),
            )?;
        // The request went out after everything journaled before the step's first model event.
        let cutoff = events
            .iter()
            .filter(of_step)
            .find(|e| e.seq > started.seq && e.type_name.starts_with("llm."))
            .map(|e| e.seq);
        let answered = events.iter().filter(of_step).find(|e| e.event_type() == Some(EventType::LlmCompleted));
        let agent = self.agent_of_run(t, &run, f.tree.ceiling.as_ref()).await?;
        let toolset = self.run_toolset(t, &agent, f.tree.ceiling.as_ref()).await?;
        let base = f.system.as_deref().unwrap_or(&agent.system_prompt).to_string();

        let history = self.store.session_messages(t, &run.session_id).await?;
        let first_of_run = history.iter().filter(|m| m.run_id == run.id).map(|m| m.index).min();
        let kept: Vec<_> = history
            .into_iter()
            .filter(|m| {
                if m.run_id == run.id {
                    cutoff.is_none_or(|c| m.seq < c)
                } else {
                    first_of_run.is_none_or(|i| m.index < i)
                }
            })
            .collect();
        let mut messages = request_messages(system_text(&base, &toolset.skills_prompt), kept);
        // Skills the input named were loaded right after it.
        let named: Vec<&str> = events
            .iter()
            .filter(|e| e.event_type() == Some(EventType::SkillLoaded) && e.data["call_id"] == "mentioned")
            .filter_map(|e| e.data["name"].as_str())
            .collect();
        let mut skill_messages = 0;
        if let Some(pos) = messages.iter().position(|m| m.role == Role::User && m.text_content() == run.input) {
            let loaded: Vec<Message> =
                toolset.skills().iter().filter(|s| named.contains(&s.name.as_str())).map(mentioned_skill).collect();
            skill_messages = loaded.len();
            messages.splice(pos + 1..pos + 1, loaded.clone());
        }

        let profile = answered.and_then(|e| e.data["profile"].as_str()).map(str::to_string);
        let planned = self.plan_model(t, profile.as_deref().unwrap_or(&run.model)).await.ok();
        let model = answered
            .and_then(|e| e.data["model"].as_str())
            .map(str::to_string)
            .or_else(|| planned.as_ref().map(|p| p.profile.model.clone()))
            .unwrap_or_else(|| run.model.clone());
        let counter = crate::context::Counter::for_model(&model);
        let tools: Vec<ToolSpec> = toolset.specs.to_vec();
        let mut tokens = ContextTokens {
            system_prompt: counter.text(&base),
            skills: counter.text(&toolset.skills_prompt),
            tools: counter.request(&[], &tools).saturating_sub(3),
            total: counter.request(&messages, &tools),
            ..Default::default()
        };
        for (i, m) in messages.iter().enumerate().skip(1) {
            let n = counter.message(m);
            if m.compaction.is_some() {
                tokens.summary += n;
            } else if m.role == Role::System
                && i > 0
                && skill_messages > 0
                && m.text_content().starts_with("Instructions of the skill")
            {
                tokens.skills += n;
            } else {
                tokens.history += n;
            }
        }
        let notes = vec![
            "The system prompt and the messages come from the journal; the tools and the skills list are the agent's as configured now.".to_string(),
        ];
        Ok(ModelContext {
            run_id: run.id.clone(),
            step,
            provider: answered.and_then(|e| e.data["provider"].as_str()).map(str::to_string),
            profile,
            model,
            params: planned.as_ref().map(|p| serde_json::Value::Object(p.profile.params.clone())).unwrap_or_default(),
            max_tokens: planned.as_ref().and_then(|p| p.profile.max_tokens),
            messages,
            tools,
            tokens,
            notes,
        })
    }
}
