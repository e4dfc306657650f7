"""orchestr8: agent orchestration on trio — supervised actors, JSON workflows, resilience.

The public API is exactly what `__all__` lists, and it is listed once: the `TYPE_CHECKING` imports
below, one `from ._module import Name as Name` line each. Everything else lives in private modules.
Names are imported on first use (PEP 562), so `import orchestr8` and `orchestr8 --help` stay fast.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any, Final

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._agents._contract import Agent as Agent
    from ._agents._contract import AgentContext as AgentContext
    from ._agents._registry import AgentRegistry as AgentRegistry
    from ._agents._workflow_directory import workflow_directory as workflow_directory
    from ._errors import ActorError as ActorError
    from ._errors import ActorNameTakenError as ActorNameTakenError
    from ._errors import ActorStoppedError as ActorStoppedError
    from ._errors import AgentConfigurationError as AgentConfigurationError
    from ._errors import AgentError as AgentError
    from ._errors import AgentExitError as AgentExitError
    from ._errors import AllProvidersFailedError as AllProvidersFailedError
    from ._errors import AskTimeoutError as AskTimeoutError
    from ._errors import AttemptTimeoutError as AttemptTimeoutError
    from ._errors import BreakerNeutral as BreakerNeutral
    from ._errors import BudgetExhaustedError as BudgetExhaustedError
    from ._errors import BulkheadFullError as BulkheadFullError
    from ._errors import CallStoppedError as CallStoppedError
    from ._errors import CircuitOpenError as CircuitOpenError
    from ._errors import DeadlineExceededError as DeadlineExceededError
    from ._errors import ExecutionError as ExecutionError
    from ._errors import ExecutionNotFoundError as ExecutionNotFoundError
    from ._errors import ExecutionStateError as ExecutionStateError
    from ._errors import ExecutionTimeoutError as ExecutionTimeoutError
    from ._errors import ExpressionError as ExpressionError
    from ._errors import ForkRefusedError as ForkRefusedError
    from ._errors import GateAlreadyAnsweredError as GateAlreadyAnsweredError
    from ._errors import GateAnswerInvalidError as GateAnswerInvalidError
    from ._errors import GateError as GateError
    from ._errors import GateNotFoundError as GateNotFoundError
    from ._errors import GateTimedOutError as GateTimedOutError
    from ._errors import IdempotencyKeyReusedError as IdempotencyKeyReusedError
    from ._errors import InputValidationError as InputValidationError
    from ._errors import InsecureBindError as InsecureBindError
    from ._errors import IterationLimitError as IterationLimitError
    from ._errors import JournalError as JournalError
    from ._errors import MailboxFullError as MailboxFullError
    from ._errors import MapItemFailedError as MapItemFailedError
    from ._errors import MapItemsError as MapItemsError
    from ._errors import MissingAPIKeyError as MissingAPIKeyError
    from ._errors import MissingSecretError as MissingSecretError
    from ._errors import ModelNameError as ModelNameError
    from ._errors import NonRetryableError as NonRetryableError
    from ._errors import Orchestr8Error as Orchestr8Error
    from ._errors import OutputNotSerialisableError as OutputNotSerialisableError
    from ._errors import PlannerFailedError as PlannerFailedError
    from ._errors import PlanRejectedError as PlanRejectedError
    from ._errors import Problem as Problem
    from ._errors import ProviderConfigError as ProviderConfigError
    from ._errors import ProviderResponseError as ProviderResponseError
    from ._errors import RateLimitedError as RateLimitedError
    from ._errors import ReferenceResolutionError as ReferenceResolutionError
    from ._errors import ResilienceError as ResilienceError
    from ._errors import RetryableError as RetryableError
    from ._errors import SecretError as SecretError
    from ._errors import SecretsFileError as SecretsFileError
    from ._errors import SupervisorGaveUpError as SupervisorGaveUpError
    from ._errors import TemplateError as TemplateError
    from ._errors import TemplateInputError as TemplateInputError
    from ._errors import UnknownAgentError as UnknownAgentError
    from ._errors import UnknownProviderError as UnknownProviderError
    from ._errors import WorkflowError as WorkflowError
    from ._errors import WorkflowValidationError as WorkflowValidationError
    from ._execution._results import ExecutionResult as ExecutionResult
    from ._execution._results import StepResult as StepResult
    from ._execution._runtime import ExecutionHandle as ExecutionHandle
    from ._execution._runtime import Runtime as Runtime
    from ._execution._runtime import open_runtime as open_runtime
    from ._execution._runtime import run_workflow as run_workflow
    from ._execution._runtime import tune_garbage_collection as tune_garbage_collection
    from ._execution._secrets import Secrets as Secrets
    from ._journal._events import Event as Event
    from ._journal._events import EventType as EventType
    from ._journal._events import ExecutionStatus as ExecutionStatus
    from ._journal._events import StepStatus as StepStatus
    from ._journal._journal import ExecutionRecord as ExecutionRecord
    from ._journal._journal import Journal as Journal
    from ._journal._journal import open_journal as open_journal
    from ._journal._replay import ExecutionState as ExecutionState
    from ._journal._replay import GateState as GateState
    from ._journal._replay import StepState as StepState
    from ._journal._replay import replay as replay
    from ._journal._requests import ControlRequest as ControlRequest
    from ._journal._requests import RequestKind as RequestKind
    from ._json import JSON as JSON
    from ._llm._anthropic_provider import AnthropicProvider as AnthropicProvider
    from ._llm._budget_ledger import call_spend as call_spend
    from ._llm._budget_ledger import worst_case_spend as worst_case_spend
    from ._llm._catalog import ProviderCatalog as ProviderCatalog
    from ._llm._catalog import ResolvedModel as ResolvedModel
    from ._llm._chat import Capability as Capability
    from ._llm._chat import ChatMessage as ChatMessage
    from ._llm._chat import ChatReply as ChatReply
    from ._llm._chat import ChatRequest as ChatRequest
    from ._llm._chat import ToolCall as ToolCall
    from ._llm._chat import ToolSpec as ToolSpec
    from ._llm._chat import Usage as Usage
    from ._llm._fallback import FallbackReply as FallbackReply
    from ._llm._fallback import complete_with_fallback as complete_with_fallback
    from ._llm._judge import ModelJudge as ModelJudge
    from ._llm._model_names import ModelName as ModelName
    from ._llm._model_names import parse_model_name as parse_model_name
    from ._llm._model_uses import ModelUse as ModelUse
    from ._llm._openai_provider import OpenAIProvider as OpenAIProvider
    from ._llm._prices import PriceEntry as PriceEntry
    from ._llm._prices import cost_of as cost_of
    from ._llm._prices import price_for as price_for
    from ._llm._provider import Provider as Provider
    from ._llm._provider import ProviderGuard as ProviderGuard
    from ._llm._scoring import Expectations as Expectations
    from ._llm._scoring import Judge as Judge
    from ._llm._scoring import Score as Score
    from ._llm._scoring import compile_expect as compile_expect
    from ._llm._scoring import score_reply as score_reply
    from ._llm._session import LLMSession as LLMSession
    from ._llm._session import Reservation as Reservation
    from ._llm._session import Spend as Spend
    from ._llm._session import detached_session as detached_session
    from ._llm._templates import PromptTemplateFile as PromptTemplateFile
    from ._llm._templates import RenderedPrompt as RenderedPrompt
    from ._llm._templates import load_template as load_template
    from ._resilience._breaker import BreakerState as BreakerState
    from ._resilience._breaker import BreakerStatistics as BreakerStatistics
    from ._resilience._breaker import BreakerTransition as BreakerTransition
    from ._resilience._breaker import CircuitBreaker as CircuitBreaker
    from ._resilience._breaker import CircuitBreakerRegistry as CircuitBreakerRegistry
    from ._resilience._limits import Bulkhead as Bulkhead
    from ._resilience._limits import BulkheadStatistics as BulkheadStatistics
    from ._resilience._limits import RateLimiter as RateLimiter
    from ._resilience._limits import RateLimiterStatistics as RateLimiterStatistics
    from ._resilience._pipeline import PipelineListener as PipelineListener
    from ._resilience._pipeline import call_with_policy as call_with_policy
    from ._resilience._retry import is_retryable as is_retryable
    from ._shell._listening import is_loopback as is_loopback
    from ._shell._listening import serve_app as serve_app
    from ._shell._process import ExitCode as ExitCode
    from ._shell._process import guard_errors as guard_errors
    from ._shell._process import open_shutdown_signals as open_shutdown_signals
    from ._shell._process import run_command as run_command
    from ._shell._process import watch_shutdown_signals as watch_shutdown_signals
    from ._supervision._actor import Actor as Actor
    from ._supervision._actor import ActorEvent as ActorEvent
    from ._supervision._actor import ActorRef as ActorRef
    from ._supervision._actor import ActorStatistics as ActorStatistics
    from ._supervision._bus import BusStatistics as BusStatistics
    from ._supervision._bus import EventBus as EventBus
    from ._supervision._bus import SubscriberStatistics as SubscriberStatistics
    from ._supervision._supervisor import RestartBackoff as RestartBackoff
    from ._supervision._supervisor import Supervisor as Supervisor
    from ._supervision._supervisor import SupervisorStatistics as SupervisorStatistics
    from ._supervision._supervisor import open_supervisor as open_supervisor
    from ._web._app import create_app as create_app
    from ._web._serve import serve as serve
    from ._workflow._budgets import Budget as Budget
    from ._workflow._codec import load_workflow as load_workflow
    from ._workflow._codec import parse_workflow as parse_workflow
    from ._workflow._codec import validate_workflow_document as validate_workflow_document
    from ._workflow._codec import workflow_to_json as workflow_to_json
    from ._workflow._document import AgentSpec as AgentSpec
    from ._workflow._document import Step as Step
    from ._workflow._document import Workflow as Workflow
    from ._workflow._document import workflow_schema as workflow_schema
    from ._workflow._expressions import Template as Template
    from ._workflow._expressions import compile_template as compile_template
    from ._workflow._inputs import validate_inputs as validate_inputs
    from ._workflow._policy import BulkheadPolicy as BulkheadPolicy
    from ._workflow._policy import CircuitBreakerPolicy as CircuitBreakerPolicy
    from ._workflow._policy import Policy as Policy
    from ._workflow._policy import RateLimitPolicy as RateLimitPolicy
    from ._workflow._policy import RetryPolicy as RetryPolicy
    from ._workflow._provider_specs import ModelPrice as ModelPrice
    from ._workflow._provider_specs import ProviderSpec as ProviderSpec
    from ._workflow._references import Reference as Reference


def _read_exports() -> dict[str, str]:
    """Each public name and its private module, read from the `TYPE_CHECKING` imports above.

    Those imports are the one list of the public API: type checkers read them as they are, and
    this reads the same lines from the module's source, so a name listed there is exported at run
    time too and nothing else is (reading and matching about 100 lines costs well under 1 ms).
    """
    source: str | None
    try:
        with open(__file__, encoding="utf-8") as file:
            source = file.read()
    except OSError:  # zipped: ask the loader; a build shipping no .py files cannot list the API
        get_source = getattr(__spec__.loader if __spec__ else None, "get_source", None)
        source = get_source(__name__) if get_source is not None else None
        if source is None:
            raise ImportError(
                "orchestr8 needs its source file __init__.py to list its API"
            ) from None
    block = source.partition("\nif TYPE_CHECKING:\n")[2].partition("\n\n")[0]
    return {name: module for module, name in _IMPORT.findall(block)}


_IMPORT = re.compile(r"^    from \.(_[\w.]+) import (\w+) as \2$", re.MULTILINE)
_EXPORTS: Final = _read_exports()

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'orchestr8' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, for completion and `help()`."""
    return list(__all__)
