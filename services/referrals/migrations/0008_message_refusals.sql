-- A message the other organisation's node refused (its signature did not verify there, or its
-- signing key was unknown): the writer's copy says so and why; NULL while nothing was refused.
ALTER TABLE messages ADD COLUMN refused_reason text;
