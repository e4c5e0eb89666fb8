BEGIN;
--
-- Create model ContentType
--
CREATE TABLE "django_content_type" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
--
-- Alter unique_together for contenttype (1 constraint(s))
--
CREATE UNIQUE INDEX "django_content_type_app_label_model_76bd3d3b_uniq" ON "django_content_type" ("app_label", "model");
COMMIT;
BEGIN;
--
-- Change Meta options on contenttype
--
--
-- Alter field name on contenttype
--
CREATE TABLE "new__django_content_type" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NULL, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
INSERT INTO "new__django_content_type" ("id", "app_label", "model", "name") SELECT "id", "app_label", "model", "name" FROM "django_content_type";
DROP TABLE "django_content_type";
ALTER TABLE "new__django_content_type" RENAME TO "django_content_type";
CREATE UNIQUE INDEX "django_content_type_app_label_model_76bd3d3b_uniq" ON "django_content_type" ("app_label", "model");
--
-- MIGRATION NOW PERFORMS OPERATION THAT CANNOT BE WRITTEN AS SQL:
-- Raw Python operation
--
--
-- Remove field name from contenttype
--
CREATE TABLE "new__django_content_type" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
INSERT INTO "new__django_content_type" ("id", "app_label", "model") SELECT "id", "app_label", "model" FROM "django_content_type";
DROP TABLE "django_content_type";
ALTER TABLE "new__django_content_type" RENAME TO "django_content_type";
CREATE UNIQUE INDEX "django_content_type_app_label_model_76bd3d3b_uniq" ON "django_content_type" ("app_label", "model");
COMMIT;
BEGIN;
--
-- Create model Comment
--
CREATE TABLE "teams_comment" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "object_id" integer unsigned NOT NULL CHECK ("object_id" >= 0), "text" varchar(200) NOT NULL);
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
--
-- Add field content_type to comment
--
CREATE TABLE "new__teams_comment" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "object_id" integer unsigned NOT NULL CHECK ("object_id" >= 0), "text" varchar(200) NOT NULL, "content_type_id" integer NOT NULL REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "new__teams_comment" ("id", "object_id", "text", "content_type_id") SELECT "id", "object_id", "text", NULL FROM "teams_comment";
DROP TABLE "teams_comment";
ALTER TABLE "new__teams_comment" RENAME TO "teams_comment";
CREATE INDEX "teams_comment_content_type_id_d9401b1e" ON "teams_comment" ("content_type_id");
COMMIT;
