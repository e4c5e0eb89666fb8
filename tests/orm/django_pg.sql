BEGIN;
--
-- Create model Member
--
CREATE TABLE "teams_member" ("id" bigserial NOT NULL PRIMARY KEY, "name" varchar(50) NOT NULL);
--
-- Create model Team
--
CREATE TABLE "teams_team" ("id" bigserial NOT NULL PRIMARY KEY, "title" varchar(100) NOT NULL, "is_active" boolean NOT NULL, "score" integer NULL, "ratio" double precision NULL);
--
-- Create constraint uniq_active_title on model team
--
CREATE UNIQUE INDEX "uniq_active_title" ON "teams_team" ("title") WHERE "is_active";
--
-- Add field team to member
--
ALTER TABLE "teams_member" ADD COLUMN "team_id" bigint NOT NULL CONSTRAINT "teams_member_team_id_1860c414_fk_teams_team_id" REFERENCES "teams_team"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "teams_member_team_id_1860c414_fk_teams_team_id" IMMEDIATE;
CREATE INDEX "teams_member_team_id_1860c414" ON "teams_member" ("team_id");
COMMIT;
