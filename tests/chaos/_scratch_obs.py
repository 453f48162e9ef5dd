import tempfile, time
from pathlib import Path
from standin.testing import StandIn
from tests.chaos.observer import SeenObserver
from tests.chaos.seed import Seeder
root = Path(tempfile.mkdtemp()); root.chmod(0o755)
with StandIn(root) as s:
    sd = Seeder(s, "x")
    sd.append("a@x.example", 3)
    obs = SeenObserver(s.dovecot.admin_session, ["a@x.example", "b@x.example"], threads=1).start()
    time.sleep(1)
    with s.dovecot.admin_session("a@x.example") as c:
        c.select_folder("INBOX"); c.add_flags([1], [b"\\Seen"])
    time.sleep(1)
    sd.append("b@x.example", 2)
    time.sleep(1)
    obs.stop()
    print(obs.first_seen, obs.unseen, obs.errors, sorted(obs.cycles)[len(obs.cycles)//2])
