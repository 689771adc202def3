using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Dnm.Cluster.Hosting;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Support;

/// <summary>
/// A cluster node in its own OS process: this test assembly started with `dotnet` (see Program.cs),
/// configured by environment variables only. Its output lines are kept for the spec to wait on.
/// </summary>
internal sealed class NodeProcess : IDisposable
{
    private readonly Process process;
    private readonly ConcurrentQueue<string> lines = new();
    private readonly SemaphoreSlim arrived = new(0);
    private readonly ITestOutputHelper? output;

    private NodeProcess(string name, IReadOnlyDictionary<string, string> env, ITestOutputHelper? output)
    {
        Name = name;
        this.output = output;
        var info = new ProcessStartInfo("dotnet", [typeof(NodeProcess).Assembly.Location])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in env) info.Environment[key] = value;
        process = new Process { StartInfo = info, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }
    public IReadOnlyCollection<string> Lines => lines;

    public static NodeProcess Start(string name, IReadOnlyDictionary<string, string> env, ITestOutputHelper? output = null) => new(name, env, output);

    /// <summary>Environment of a node; <paramref name="extra"/> wins.</summary>
    public static Dictionary<string, string> Env(string role, int port, string seeds, params (string Key, string Value)[] extra)
    {
        var env = new Dictionary<string, string>
        {
            [NodeEnvironment.Role] = role,
            [NodeEnvironment.Port] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [NodeEnvironment.Host] = "127.0.0.1",
            [NodeEnvironment.BindHost] = "127.0.0.1",
            [NodeEnvironment.JoinTimeout] = "60s",
            [NodeEnvironment.StepTimeout] = "30s",
            [NodeEnvironment.DownAfter] = "3s",
            [NodeEnvironment.ChecksumEvery] = "10",
        };
        if (seeds.Length > 0) env[NodeEnvironment.Seeds] = seeds;
        foreach (var (key, value) in extra) env[key] = value;
        return env;
    }

    private void Add(string? line)
    {
        if (line is null) return;
        lines.Enqueue(line);
        arrived.Release();
        try { output?.WriteLine($"[{Name}] {line}"); } catch (InvalidOperationException) { } // the test already ended
    }

    /// <summary>Waits for an output line that matches; fails with the process's output if none comes in time.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (lines.FirstOrDefault(match) is { } line) return line;
            var left = timeout - deadline.Elapsed;
            if (left <= TimeSpan.Zero || (process.HasExited && !lines.Any(match) && arrived.CurrentCount == 0 && !await arrived.WaitAsync(200)))
                throw new TimeoutException($"{Name}: no matching line within {timeout.TotalSeconds:0}s (exited: {process.HasExited}); last lines:\n" +
                                           string.Join("\n", lines.TakeLast(25)));
            await arrived.WaitAsync(left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1));
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{Name} did not exit within {timeout.TotalSeconds:0}s; last lines:\n" + string.Join("\n", lines.TakeLast(25)));
        }
        return process.ExitCode;
    }

    /// <summary>SIGTERM, as Kubernetes stops a pod: the node stops cleanly.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>SIGKILL: no shutdown, no goodbye to the cluster.</summary>
    public void Kill() => process.Kill(entireProcessTree: false);

    public void Dispose()
    {
        try
        {
            if (!process.HasExited) process.Kill();
        }
        catch (InvalidOperationException) { }
        process.Dispose();
    }
}
