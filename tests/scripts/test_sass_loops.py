"""scripts/sass-loops.py on a hand-written SASS listing, through a stand-in cuobjdump (no CUDA needed)."""
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "sass-loops.py")

# Two nested loops around MMAs (outer 0x0010..0x0090, inner 0x0030..0x0070), a loop without one
# (0x00a0..0x00c0) and a forward branch; the answer is the inner loop: 5 instructions, 2 MMA.
SASS = textwrap.dedent("""\
        Function : k_one
        /*0000*/                   MOV R1, c[0x0][0x28] ;        /* 0x00000a0000017a02 */
        /*0010*/                   LDS R2, [R3] ;                /* 0x0000000003027984 */
        /*0020*/               @P0 BRA 0x00a0 ;                  /* 0x0000000000000947 */
        /*0030*/                   HMMA.16816.F32.BF16 R4, R8, R12, RZ ;   /* 0x0000000c0804723c */
        /*0040*/                   FFMA R16, R4, R2, R16 ;       /* 0x0000000204107223 */
        /*0050*/                   HMMA.16816.F32.BF16 R4, R8, R14, R4 ;   /* 0x0000000e0804723c */
        /*0060*/                   IADD3 R20, R20, 0x1, RZ ;     /* 0x0000000114147810 */
        /*0070*/               @P1 BRA 0x30 ;                    /* 0xfffffffc00000947 */
        /*0080*/                   HMMA.16816.F32.BF16 R4, R8, R12, R4 ;   /* 0x0000000c0804723c */
        /*0090*/               @P2 BRA 0x10 ;                    /* 0xfffffff800000947 */
        /*00a0*/                   IADD3 R21, R21, 0x1, RZ ;     /* 0x0000000115157810 */
        /*00b0*/                   ISETP.NE.AND P3, PT, R21, 0x8, PT ; /* 0x00000008150c780c */
        /*00c0*/               @P3 BRA 0xa0 ;                    /* 0xfffffffc00000947 */
        /*00d0*/                   EXIT ;                        /* 0x000000000000794d */
""")
NO_MMA = textwrap.dedent("""\
        Function : k_two
        /*0000*/                   IADD3 R21, R21, 0x1, RZ ;     /* 0x0000000115157810 */
        /*0010*/               @P3 BRA 0x0 ;                     /* 0xfffffffc00000947 */
        /*0020*/                   EXIT ;                        /* 0x000000000000794d */
""")


class SassLoops(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        with open(os.path.join(d, "one.sass"), "w") as f:
            f.write(SASS)
        with open(os.path.join(d, "two.sass"), "w") as f:
            f.write(NO_MMA)
        # A stand-in for cuobjdump: -elf lists both kernels' sections, -sass -fun NAME prints NAME's listing.
        tool = os.path.join(d, "cuobjdump")
        with open(tool, "w") as f:
            f.write(textwrap.dedent(f"""\
                #!{sys.executable}
                import sys
                a = sys.argv[1:]
                if a[0] == "-elf":
                    print("  [ 5] .text.k_one PROGBITS\\n  [ 6] .text.k_two PROGBITS")
                elif a[0] == "-sass" and a[1] == "-fun":
                    print(open({d!r} + ("/one.sass" if a[2] == "k_one" else "/two.sass")).read())
                else:
                    sys.exit("unexpected " + " ".join(a))
                """))
        os.chmod(tool, os.stat(tool).st_mode | stat.S_IXUSR)
        self.cubin = os.path.join(d, "k.cubin")
        open(self.cubin, "wb").close()
        self.env = dict(os.environ, CUOBJDUMP=tool)

    def tearDown(self):
        self.tmp.cleanup()

    def run_script(self, pattern):
        return subprocess.run([sys.executable, SCRIPT, self.cubin, pattern], env=self.env, capture_output=True,
                              text=True, timeout=30)

    def test_innermost_loop_with_an_mma(self):
        r = self.run_script("k_")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2)
        self.assertRegex(lines[0], r"^\s+5 instructions,\s+2 MMA\s+\(loop 0x30\.\.0x70\)\s+k_one$")
        self.assertRegex(lines[1], r"no loop with an MMA instruction\s+k_two$")

    def test_no_match_is_a_one_line_error(self):
        r = self.run_script("nothing_like_this")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertIn("no kernel matches", r.stderr)

    def test_bad_pattern_is_a_one_line_error(self):
        r = self.run_script("k_(")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertIn("bad PATTERN", r.stderr)

    def test_missing_file(self):
        r = subprocess.run([sys.executable, SCRIPT, os.path.join(self.tmp.name, "absent.o"), "k"], env=self.env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such file", r.stderr)


if __name__ == "__main__":
    unittest.main()
