BEGIN;
--
-- Create model Member
--
CREATE TABLE "teams_member" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(50) NOT NULL);
--
-- Create model Team
--
CREATE TABLE "teams_team" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "title" varchar(100) NOT NULL, "is_active" bool NOT NULL, "score" integer NULL, "ratio" real NULL);
--
-- Create constraint uniq_active_title on model team
--
CREATE UNIQUE INDEX "uniq_active_title" ON "teams_team" ("title") WHERE "is_active";
--
-- Add field team to member
--
CREATE TABLE "new__teams_member" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(50) NOT NULL, "team_id" bigint NOT NULL REFERENCES "teams_team" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "new__teams_member" ("id", "name", "team_id") SELECT "id", "name", NULL FROM "teams_member";
DROP TABLE "teams_member";
ALTER TABLE "new__teams_member" RENAME TO "teams_member";
CREATE INDEX "teams_member_team_id_1860c414" ON "teams_member" ("team_id");
COMMIT;
