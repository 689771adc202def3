using System.Runtime.InteropServices;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

/// <summary>
/// Checkpoints that go wrong: a corrupt newest one on resume, writes that fail (ENOSPC, EIO) or land damaged. A run
/// resumes from the newest checkpoint that verifies, pruning never deletes the last good one, and a failed write is
/// reported, leaves no temporary file and lets training go on until writes keep failing.
/// </summary>
public class CheckpointFaultsSpec
{
    // 25 steps (10 autoencoder, 15 joint); checkpoint-every 7: step-7, step-10-som-done, step-14, step-21.
    private static readonly Core.Config.DnmConfig Config = StepEngineSpec.Small with
    {
        Map = "3x3", BatchSize = 24, PretrainEpochs = 2, SomIterations = 30, Alpha = 10, Epochs = 3, CheckpointEvery = 7, Sigma0 = 1.5,
    };

    private sealed class Messages : ITrainingObserver
    {
        public List<string> Lines { get; } = [];
        public void OnMessage(string message) { lock (Lines) Lines.Add(message); }
    }

    private sealed class CancelAt(long step, CancellationTokenSource cts) : ITrainingObserver
    {
        public void OnStep(StepReport report)
        {
            if (report.Phase != TrainingPhase.SomPretrain && report.GlobalStep == step) cts.Cancel();
        }
    }

    private static Trainer NewTrainer(RunDirectory run, InMemoryDataset data, ITrainingObserver observer, Core.Config.DnmConfig? config = null) =>
        new((config ?? Config) with { Out = run.Root }, data, data, CPU, run, observer);

    private static ulong Train(RunDirectory run, ITrainingObserver observer, (string Path, Checkpoint Checkpoint)? resume = null,
        CancellationToken cancel = default, Core.Config.DnmConfig? config = null)
    {
        using var data = InMemoryDataset.Blobs(100, 1);
        using var trainer = NewTrainer(run, data, observer, config);
        if (resume is { } r) trainer.Resume(r.Checkpoint, r.Path);
        trainer.Run(cancel);
        return EngineState.Checksum(trainer.Engine);
    }

    /// <summary>Every file of the run's checkpoints folder, hidden temporary ones included.</summary>
    private static string[] Files(RunDirectory run) => Directory.GetFiles(run.Checkpoints).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void Resume_should_fall_back_past_a_corrupt_newest_checkpoint_and_still_end_bitwise_equal()
    {
        using var dir = new ScratchDirectory();
        var reference = Train(new RunDirectory(dir.File("a")), new Messages());

        var run = new RunDirectory(dir.File("b"));
        using (var cts = new CancellationTokenSource())
            Assert.ThrowsAny<OperationCanceledException>(() => Train(run, new CancelAt(15, cts), cancel: cts.Token));
        // The stop wrote the checkpoint of its last step (15); pruning kept the newest three.
        Assert.Equal(["step-000000010-som-done.ckpt", "step-000000014.ckpt", "step-000000015.ckpt"], Files(run));
        // A torn write the checksum catches: one flipped bit in the newest.
        var newest = Path.Combine(run.Checkpoints, "step-000000015.ckpt");
        var bytes = File.ReadAllBytes(newest);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(newest, bytes);

        var warnings = new List<string>();
        var usable = Checkpoint.LatestUsable(run.Checkpoints, warnings.Add);
        Assert.NotNull(usable);
        Assert.EndsWith("step-000000014.ckpt", usable.Value.Path);
        Assert.Contains(warnings, w => w.StartsWith("warning: skipping checkpoint step-000000015.ckpt: ", StringComparison.Ordinal) && w.Contains("corrupt"));
        Assert.Contains(warnings, w => w.Contains("resuming from step-000000014.ckpt"));

        Assert.Equal(reference, Train(run, new Messages(), usable));
    }

    [Fact]
    public void A_checkpoint_with_non_finite_values_is_skipped_and_a_folder_of_only_bad_ones_is_an_error()
    {
        using var dir = new ScratchDirectory();
        var run = new RunDirectory(dir.Path);
        using var data = InMemoryDataset.Blobs(100, 1);
        using var trainer = NewTrainer(run, data, new Messages());
        var good = trainer.ToCheckpoint();
        good.Save(Path.Combine(run.Checkpoints, Checkpoint.FileName(3)));
        var poisoned = good with { Tensors = [.. good.Tensors.Select(t => t with { Data = [.. t.Data] })] };
        poisoned.Tensors[^1].Data[5] = float.NaN;
        poisoned.Save(Path.Combine(run.Checkpoints, Checkpoint.FileName(4)));

        var warnings = new List<string>();
        Assert.EndsWith(Checkpoint.FileName(3), Checkpoint.LatestUsable(run.Checkpoints, warnings.Add)!.Value.Path);
        Assert.Contains(warnings, w => w.Contains("step-000000004.ckpt: tensor som/w holds NaN or infinity"));

        File.WriteAllBytes(Path.Combine(run.Checkpoints, Checkpoint.FileName(3)), [.. "DNMCKPT1"u8, .. new byte[40]]);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.LatestUsable(run.Checkpoints, _ => { }));
        Assert.Contains("none of the 2 checkpoints", e.Message);
        Assert.Null(Checkpoint.LatestUsable(dir.File("nothing"), _ => { }));
    }

    [Fact]
    public void A_failed_write_is_reported_leaves_no_temporary_file_and_training_goes_on()
    {
        using var dir = new ScratchDirectory();
        var reference = Train(new RunDirectory(dir.File("a")), new Messages());
        var writes = 0;
        // The first two writes fail part-way, as on a full disk; the third (step 14) and the fourth succeed.
        var run = new RunDirectory(dir.File("b")) { CheckpointStream = s => ++writes <= 2 ? new FaultyStream(s, FaultyStream.Fault.NoSpace) : s };
        var messages = new Messages();

        Assert.Equal(reference, Train(run, messages));

        Assert.Equal(4, writes);
        Assert.Equal(["step-000000014.ckpt", "step-000000021.ckpt"], Files(run));
        var failed = messages.Lines.Where(l => l.Contains("could not be written")).ToArray();
        Assert.Equal(2, failed.Length);
        Assert.StartsWith("warning: checkpoint step-000000007.ckpt could not be written (No space left on device); training goes on", failed[0]);
        Assert.EndsWith("(failure 2 of 3 in a row)", failed[1]);
    }

    [Fact]
    public void Writes_that_keep_failing_fail_the_run_with_one_clear_error()
    {
        using var dir = new ScratchDirectory();
        var run = new RunDirectory(dir.Path) { CheckpointStream = s => new FaultyStream(s, FaultyStream.Fault.NoSpace) };
        var e = Assert.Throws<CheckpointException>(() => Train(run, new Messages()));
        Assert.StartsWith("checkpoint writes failed 3 times in a row, the last ", e.Message);
        Assert.Contains("step-000000014.ckpt: No space left on device", e.Message);
        Assert.Contains("there is no earlier good checkpoint", e.Message);
        Assert.Empty(Files(run));
    }

    [Fact]
    public void Pruning_should_keep_the_last_good_checkpoint_when_newer_ones_are_damaged()
    {
        using var dir = new ScratchDirectory();
        var writes = 0;
        // Every write after the first lands damaged (the bytes change after they were hashed): none of them verifies.
        var run = new RunDirectory(dir.Path) { CheckpointStream = s => ++writes == 1 ? s : new FaultyStream(s, FaultyStream.Fault.FlipBit) };
        var messages = new Messages();
        Train(run, messages, config: Config with { CheckpointEvery = 2 });

        Assert.True(writes > 5, $"{writes} checkpoint writes");
        var files = Files(run);
        Assert.Equal(4, files.Length);
        Assert.Equal("step-000000002.ckpt", files[0]);
        Assert.Contains(messages.Lines, l => l.Contains("does not verify when read back; pruning keeps step-000000002.ckpt"));
        Assert.EndsWith("step-000000002.ckpt", Checkpoint.LatestUsable(run.Checkpoints, _ => { })!.Value.Path);
    }

    [NeedsRootFact]
    public void A_full_disk_fails_checkpoint_writes_without_leaving_files_until_the_run_stops()
    {
        using var dir = new ScratchDirectory();
        var mount = Directory.CreateDirectory(dir.File("tmpfs")).FullName;
        // A 1 MiB tmpfs, nearly filled: config.json and metrics.jsonl fit, a ~60 KB checkpoint does not.
        Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount);
        try
        {
            using (var filler = File.Create(Path.Combine(mount, "filler")))
            {
                var block = new byte[4096];
                try { while (true) filler.Write(block); }
                catch (IOException) { }
            }
            var filler2 = new FileInfo(Path.Combine(mount, "filler"));
            using (var f = filler2.Open(FileMode.Open)) f.SetLength(Math.Max(0, filler2.Length - 32 * 1024));
            var run = new RunDirectory(Path.Combine(mount, "run"));
            var messages = new Messages();
            var e = Assert.Throws<CheckpointException>(() => Train(run, messages));
            Assert.StartsWith("checkpoint writes failed 3 times in a row", e.Message);
            Assert.Contains("No space left on device", e.Message);
            // The kernel's ENOSPC, as .NET words it: "No space left on device : '<the temporary file>'".
            Assert.Equal(2, messages.Lines.Count(l => l.Contains("could not be written (No space left on device") && l.Contains("training goes on")));
            Assert.Empty(Files(run));
        }
        finally
        {
            Run("umount", mount);
        }
    }

    private static void Run(string file, params string[] args)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)}: {error}");
    }

    /// <summary>A checkpoint file's stream that fails as a full disk does, or changes a byte after it was hashed.</summary>
    private sealed class FaultyStream(Stream inner, FaultyStream.Fault fault) : Stream
    {
        public enum Fault { NoSpace, FlipBit }

        private long written;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (fault == Fault.NoSpace && written + buffer.Length > 1000)
            {
                inner.Write(buffer[..(int)(1000 - written)]);
                throw new IOException("No space left on device");
            }
            if (fault == Fault.FlipBit && written <= 500 && written + buffer.Length > 500)
            {
                var copy = buffer.ToArray();
                copy[500 - written] ^= 1;
                inner.Write(copy);
            }
            else
            {
                inner.Write(buffer);
            }
            written += buffer.Length;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>
/// A fact that needs root (it mounts a tmpfs). Skipped on a developer's machine without it, but run (and failing,
/// saying why) where CI=true, so CI can never pass by skipping it.
/// </summary>
public sealed class NeedsRootFactAttribute : FactAttribute
{
    public NeedsRootFactAttribute()
    {
        if (Environment.UserName != "root" && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            Skip = "mounting a tmpfs needs root; with CI=true this fails instead";
    }
}
