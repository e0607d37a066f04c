-- Monthly AI budgets, command side. Their SQL lives in one place, `runtime::ai_budget`, which the
-- command API (admission, per-user budgets) and the worker (settlement) both use.

-- A user's own monthly budget (`PUT /admin/users/{id}`), written with `UserAiBudgetSet` in its
-- transaction. No row: `BACKFORGE_AI_MONTHLY_BUDGET_USD` applies (or no budget at all).
CREATE TABLE IF NOT EXISTS ai_user_budgets (
    user_id uuid PRIMARY KEY,
    budget_usd numeric(20, 6) NOT NULL CHECK (budget_usd >= 0),
    updated_at timestamptz NOT NULL
);

-- A user's UTC calendar month: what finished requests cost (`spent_usd`) and the worst cases
-- running ones hold (`reserved_usd`). Admission locks the row, so concurrent requests never
-- overshoot: spent + reserved + a new reservation ≤ budget, checked under the lock.
CREATE TABLE IF NOT EXISTS ai_budget (
    user_id uuid NOT NULL,
    month date NOT NULL,
    spent_usd numeric(30, 6) NOT NULL DEFAULT 0 CHECK (spent_usd >= 0),
    reserved_usd numeric(30, 6) NOT NULL DEFAULT 0 CHECK (reserved_usd >= 0),
    PRIMARY KEY (user_id, month)
);

-- Each admitted request's reservation, until its terminal event settles it with the actual cost
-- (`cost_usd` set once: a settle that finds it set changes nothing).
CREATE TABLE IF NOT EXISTS ai_budget_requests (
    request_id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    month date NOT NULL,
    reserved_usd numeric(30, 6) NOT NULL,
    cost_usd numeric(30, 6),
    settled_at timestamptz,
    FOREIGN KEY (user_id, month) REFERENCES ai_budget (user_id, month)
);
