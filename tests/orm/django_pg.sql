BEGIN;
--
-- Create model ContentType
--
CREATE TABLE "django_content_type" ("id" serial NOT NULL PRIMARY KEY, "name" varchar(100) NOT NULL, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
--
-- Alter unique_together for contenttype (1 constraint(s))
--
ALTER TABLE "django_content_type" ADD CONSTRAINT "django_content_type_app_label_model_76bd3d3b_uniq" UNIQUE ("app_label", "model");
COMMIT;
BEGIN;
--
-- Change Meta options on contenttype
--
--
-- Alter field name on contenttype
--
ALTER TABLE "django_content_type" ALTER COLUMN "name" DROP NOT NULL;
--
-- MIGRATION NOW PERFORMS OPERATION THAT CANNOT BE WRITTEN AS SQL:
-- Raw Python operation
--
--
-- Remove field name from contenttype
--
ALTER TABLE "django_content_type" DROP COLUMN "name" CASCADE;
COMMIT;
BEGIN;
--
-- Create model Comment
--
CREATE TABLE "teams_comment" ("id" bigserial NOT NULL PRIMARY KEY, "object_id" integer NOT NULL CHECK ("object_id" >= 0), "text" varchar(200) NOT NULL);
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
--
-- Add field content_type to comment
--
ALTER TABLE "teams_comment" ADD COLUMN "content_type_id" integer NOT NULL CONSTRAINT "teams_comment_content_type_id_d9401b1e_fk_django_co" REFERENCES "django_content_type"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "teams_comment_content_type_id_d9401b1e_fk_django_co" IMMEDIATE;
CREATE INDEX "teams_member_team_id_1860c414" ON "teams_member" ("team_id");
CREATE INDEX "teams_comment_content_type_id_d9401b1e" ON "teams_comment" ("content_type_id");
COMMIT;
