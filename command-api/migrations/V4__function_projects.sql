-- `POST /functions/{function_id}/test` names a function without its project. Written with the
-- `FunctionCreated` event in the same transaction, so a function is found the moment its creation
-- is answered. A row outlives its function: the project's state (folded from its stream) decides
-- whether the function still exists.
CREATE TABLE IF NOT EXISTS function_projects (
    function_id uuid PRIMARY KEY,
    project_id uuid NOT NULL
);
