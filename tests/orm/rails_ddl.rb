# Print the DDL ActiveRecord (Debian's ruby-activerecord, 6.1) writes for
# the schema below: `ruby rails_ddl.rb sqlite3 > rails_sqlite.sql`, or
# `PGHOST=/sock ruby rails_ddl.rb postgresql > rails_pg.sql` (with
# ruby-sqlite3 / ruby-pg). The tests read the committed files.
require "active_record"
require "logger"
require "stringio"
log = StringIO.new
if ARGV[0] == "sqlite3"
  ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: ":memory:")
else
  ActiveRecord::Base.establish_connection(adapter: "postgresql", host: ENV["PGHOST"],
                                          username: "postgres", database: "postgres")
end
ActiveRecord::Migration.verbose = false
ActiveRecord::Base.logger = Logger.new(log)
ActiveRecord::Schema.define do
  create_table :teams, force: true do |t|
    t.string :title, null: false
    t.boolean :active, default: true, null: false
    t.integer :score
    t.float :ratio
    t.timestamps
  end
  add_index :teams, :title, unique: true, where: "active", name: "index_teams_on_title_active"
end
ActiveRecord::Base.connection.drop_table(:teams) if ARGV[0] != "sqlite3"
puts log.string.lines.grep(/CREATE (TABLE "teams"|UNIQUE INDEX)/)
             .map { |l| l.gsub(/\e\[[0-9;]*m/, "").sub(/^.*?\)\s+(?=CREATE)/, "").strip + ";" }
