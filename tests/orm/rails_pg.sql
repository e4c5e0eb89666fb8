CREATE TABLE "teams" ("id" bigserial primary key, "title" character varying NOT NULL, "active" boolean DEFAULT TRUE NOT NULL, "score" integer, "ratio" float, "created_at" timestamp(6) NOT NULL, "updated_at" timestamp(6) NOT NULL);
CREATE UNIQUE INDEX "index_teams_on_title_active" ON "teams" ("title") WHERE active;
