using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Dnm.Node;
using Dnm.Tests.Shared;

namespace Dnm.Deploy.Tests;

/// <summary>
/// The exit codes the training Jobs' policies read (deploy/k8s/base, ManifestSpec's Job test), from real `dnm node`
/// processes: 0 only when the run has finished (the rehearsal: every node of a finished run exits 0), so a node stopped
/// before that, by SIGTERM as the kubelet stops a deleted, drained or preempted pod, must not exit 0: its index would count
/// as succeeded, and the success policy would complete the Job and stop every other pod. Nor 2 or 3, which fail the Job.
/// The manifests set DNM_STOP_EXIT_CODE=143, which the failure policy ignores (the pod is replaced, not counted).
/// </summary>
public sealed class NodeExitSpec
{
    [Theory]
    [InlineData("worker")]
    [InlineData("coordinator")]
    public async Task A_node_stopped_by_SIGTERM_before_the_run_finished_should_exit_with_a_code_its_Job_retries(string role)
    {
        using var dir = new TempDirectory();
        var env = new Dictionary<string, string>
        {
            ["DNM_ROLE"] = role, ["DNM_HOST"] = "127.0.0.1", ["DNM_PORT"] = "0", ["DNM_METRICS_PORT"] = "0", ["DNM_JOIN_TIMEOUT"] = "5m",
            // As the Jobs set it: a clean stop exits 143, which their failure policy replaces without counting.
            ["DNM_STOP_EXIT_CODE"] = "143",
        };
        var args = new List<string> { "node" };
        if (role == "worker")
            // A seed that never answers: the worker waits to join.
            env["DNM_SEEDS"] = $"127.0.0.1:{TestPorts.Next().ToString(CultureInfo.InvariantCulture)}";
        else
        {
            // A coordinator waiting for a worker that never comes.
            env["DNM_MIN_WORKERS"] = "1";
            args.AddRange(["--dataset", Idx(dir.Path), "--map", "2x2", "--batch-size", "8", "--out", Path.Combine(dir.Path, "run"), "--device", "cpu"]);
        }

        var (code, output) = await RunAndTerminate(args, env, started: "dnm node: roles ");
        // A clean stop (the node left the cluster; a coordinator checkpointed what it had) exits with DNM_STOP_EXIT_CODE.
        Assert.True(code == 143, $"exit {code}, expected 143 (DNM_STOP_EXIT_CODE):\n{output}");
    }

    /// <summary>Starts dnm, sends SIGTERM once it has printed <paramref name="started"/> and a moment has passed, and returns its exit code and output.</summary>
    private static async Task<(int Code, string Output)> RunAndTerminate(List<string> args, Dictionary<string, string> env, string started)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "dnm.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("DNM_", StringComparison.Ordinal)).ToList()) start.Environment.Remove(name);
        foreach (var (name, value) in env) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            if (e.Data.StartsWith(started, StringComparison.Ordinal)) up.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            // Generous: the machine that runs the tests is often loaded.
            await Task.WhenAny(up.Task, process.WaitForExitAsync()).WaitAsync(TimeSpan.FromMinutes(2));
            Assert.False(process.HasExited, $"dnm exited before it was stopped:\n{output}");
            // Into the wait: the cluster host starting, or waiting for a seed or a worker.
            await Task.Delay(TimeSpan.FromSeconds(3));
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])!) await kill.WaitForExitAsync();
            // A node leaves within its 15 s grace; the pods give it 60 s or more.
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        process.WaitForExit();
        lock (output) return (process.ExitCode, output.ToString());
    }

    /// <summary>A tiny IDX dataset (16 images of 12x12, 4 labels) in <paramref name="dir"/>, as a dataset spec.</summary>
    private static string Idx(string dir)
    {
        const int count = 16, size = 12;
        var images = new byte[16 + count * size * size];
        var labels = new byte[8 + count];
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(0), 0x803);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(8), size);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(12), size);
        BinaryPrimitives.WriteInt32BigEndian(labels.AsSpan(0), 0x801);
        BinaryPrimitives.WriteInt32BigEndian(labels.AsSpan(4), count);
        for (var i = 0; i < count; i++)
        {
            labels[8 + i] = (byte)(i % 4);
            for (var p = 0; p < size * size; p++) images[16 + i * size * size + p] = (byte)((p * 7 + i * 31) % 256);
        }
        var imagePath = Path.Combine(dir, "images.idx");
        var labelPath = Path.Combine(dir, "labels.idx");
        File.WriteAllBytes(imagePath, images);
        File.WriteAllBytes(labelPath, labels);
        return $"idx:{imagePath},{labelPath}";
    }
}
