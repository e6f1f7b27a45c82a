"""Scenario files fail with messages naming the field; unsafe runs are refused before any request."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from simulation_assets.core.power_users.actions import plan_session, render
from simulation_assets.core.power_users.config import (
    DEFAULT_PROFILES,
    ConfigError,
    parse_scenario,
)
from simulation_assets.core.power_users.safety import SafetyError, check_scenario
from simulation_assets.sinks.power_users_client import PowerUserTarget
from simulation_assets.sinks.power_users_scenario import load_scenario

# Nothing listens here: a refused run must fail before it tries to connect.
NOWHERE = "http://127.0.0.1:9"


def _default() -> dict:
    return yaml.safe_load(DEFAULT_PROFILES.read_text())


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_scenario(data, "test.yaml")
    return str(exc.value)


def test_packaged_file_has_the_five_personas_in_the_seed_shape():
    scenario = load_scenario()
    assert [p.name for p in scenario.simulations] == [
        "Portfolio-Manager-Paula",
        "First-Time-Investor-Frank",
        "Real-Estate-Agent-Rita",
        "Weekend-Warrior-Will",
        "Business-Development-Ben",
    ]
    assert scenario.simulation_config.base_url == ""
    assert all(p.email.endswith("@simulated.propiq.test") for p in scenario.simulations)
    assert scenario.simulation_config.costs.openai_input_usd_per_1k == 0.00015
    assert scenario.simulation_config.costs.stripe_fixed_usd == 0.30


def test_probability_above_one_names_the_action_field():
    data = _default()
    data["simulations"][0]["actions"][1]["probability"] = 1.5
    message = _error(data)
    assert "simulations[0].actions[1].probability" in message
    assert "less than or equal to 1" in message


def test_misspelt_action_field_suggests_the_real_one():
    data = _default()
    data["simulations"][2]["actions"][1]["probabilty"] = 0.5
    assert "simulations[2].actions[1].probabilty: unknown field (did you mean 'probability'?)" in _error(data)


def test_unknown_action_type_is_named_with_a_suggestion():
    data = _default()
    data["simulations"][1]["actions"][0]["type"] = "analyse_property"
    message = _error(data)
    assert "simulations[1].actions[0].type" in message and "First-Time-Investor-Frank" in message
    assert "did you mean 'analyze_property'" in message


def test_bad_status_bad_tier_and_duplicate_names_are_reported():
    data = _default()
    data["simulations"][0]["actions"][0]["expected_status"] = "ok"
    assert "simulations[0].actions[0].expected_status" in _error(data)
    data = _default()
    data["simulations"][3]["persona"]["starting_tier"] = "platinum"
    assert "persona.starting_tier: unknown tier 'platinum'" in _error(data)
    data = _default()
    data["simulations"][1]["name"] = data["simulations"][0]["name"]
    assert "persona names must be unique" in _error(data)
    data = _default()
    data["simulation_config"]["base_url"] = "localhost:8000"
    assert "simulation_config.base_url" in _error(data)
    data = _default()
    data["simulation_config"]["costs"]["stripe_percent"] = -1
    assert "simulation_config.costs.stripe_percent" in _error(data)


def test_action_missing_a_template_value_is_refused_before_the_run():
    data = _default()
    data["simulation_config"]["action_types"] = {
        "compare_properties": {
            "method": "POST",
            "path": "/compare/{portfolio}",
            "json": {"ids": "{property_ids}"},
        }
    }
    data["simulations"][0]["actions"].append({"type": "compare_properties", "portfolio": "p1"})
    message = _error(data)
    assert (
        "simulations[0].actions[21]: action type 'compare_properties' needs a value for property_ids"
        in message
    )


def test_yaml_syntax_error_gives_the_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulations:\n  - name: x\n    actions: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match=r"scenario file .*missing.yaml not found"):
        load_scenario(tmp_path / "missing.yaml")


def test_new_action_type_and_persona_need_no_code(tmp_path: Path):
    data = {
        "simulation_config": {
            "action_types": {
                "compare_properties": {
                    "method": "POST",
                    "path": "/propiq/compare",
                    "json": {"property_ids": "{property_ids}"},
                }
            }
        },
        "simulations": [
            {
                "name": "Commercial-Investor-Carol",
                "user_id": "sim_carol_006",
                "email": "carol.commercial@simulated.propiq.test",
                "persona": {"role": "Commercial investor", "investment_strategy": ["retail", "office"]},
                "actions": [
                    {
                        "type": "compare_properties",
                        "property_ids": ["id1", "id2"],
                        "expected_status": [200, 404],
                    }
                ],
            }
        ],
    }
    scenario = parse_scenario(data)
    kind = scenario.action_types()["compare_properties"]
    action = scenario.simulations[0].actions[0]
    assert render(kind.body, action.variables()) == {"property_ids": ["id1", "id2"]}
    assert action.expected_status == (200, 404)


def test_plans_are_deterministic_per_seed_and_day():
    persona = load_scenario().persona("Portfolio-Manager-Paula")
    first = [(p.index, p.requests) for p in plan_session(persona, 42, "2026-01-01")]
    assert first == [(p.index, p.requests) for p in plan_session(persona, 42, "2026-01-01")]
    batch = [r for i, r in first if persona.actions[i].type == "batch_analyze_properties"]
    assert batch and 8 <= batch[0] <= 12


@pytest.mark.parametrize("variable", ["STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY"])
@pytest.mark.parametrize("key", ["sk_live_51Habc", "pk_live_51Habc"])
def test_live_stripe_key_is_refused_before_any_request(variable, key):
    with pytest.raises(SafetyError, match="live Stripe key"):
        PowerUserTarget(base_url=NOWHERE).run(env={variable: key})


def test_test_mode_key_is_accepted():
    check_scenario(
        load_scenario(), {"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_PUBLISHABLE_KEY": "pk_test_1"}
    )


def test_persona_email_outside_the_simulated_domain_is_refused():
    data = _default()
    data["simulations"][4]["email"] = "ben@gmail.com"
    with pytest.raises(SafetyError, match=r"simulations\[4\]\.email is 'ben@gmail.com'"):
        PowerUserTarget(base_url=NOWHERE).run(scenario=parse_scenario(data), env={})
    data = _default()
    data["simulations"][0]["actions"][1]["email"] = "paula@example.com"
    with pytest.raises(SafetyError, match=r"actions\[1\]\.email"):
        check_scenario(parse_scenario(data), {})


def test_live_key_inside_the_scenario_file_is_refused():
    data = copy.deepcopy(_default())
    data["simulations"][1]["actions"][15]["payment_method"] = "pk_live_abc"
    with pytest.raises(SafetyError, match="contains a live Stripe key"):
        check_scenario(parse_scenario(data), {})


def test_default_base_url_is_never_a_public_host():
    assert PowerUserTarget(base_url="").base_url == ""
    assert load_scenario().simulation_config.base_url == ""


def test_target_resource_binds_its_environment_variables_by_name(monkeypatch):
    from simulation_assets.defs.power_users import power_users_target
    from simulation_assets.sinks.config_files import resolved

    monkeypatch.setenv("POWER_USERS_BASE_URL", "http://127.0.0.1:8123")
    resource = power_users_target()
    assert resource.base_url == "POWER_USERS_BASE_URL"  # bound to the variable: the UI shows its name
    assert resolved(resource).base_url == "http://127.0.0.1:8123"
    assert power_users_target(base_url="http://127.0.0.1:9").base_url == "http://127.0.0.1:9"
