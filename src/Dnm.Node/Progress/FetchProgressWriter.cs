using Dnm.Core.Data;

namespace Dnm.Node.Progress;

/// <summary>
/// Shows a dataset download (the MNIST fetch on first use). Live: one line redrawn per file. Plain: a
/// line when a file starts, every ~10 s while it arrives, when it is done and when a source fails.
/// Reports arrive synchronously from the fetching code (this is not <see cref="Progress{T}"/>, which would post them late).
/// </summary>
public sealed class FetchProgressWriter(TextWriter output, bool live, TimeProvider clock) : IProgress<FetchProgress>
{
    private static readonly TimeSpan PlainEvery = TimeSpan.FromSeconds(10);
    private readonly HashSet<string> fetched = [];
    private string? current;
    private long lastLine;
    private bool redrawing;

    public void Report(FetchProgress value)
    {
        lock (output)
        {
            var name = value.File ?? value.Source;
            switch (value.Phase)
            {
                case FetchPhase.Checking:
                    if (live) Redraw($"checking {name}");
                    break;
                case FetchPhase.Downloading or FetchPhase.Extracting:
                    var verb = value.Phase == FetchPhase.Downloading ? "downloading" : "extracting";
                    var text = value.File is null
                        ? $"{verb} from {value.Source}"
                        : $"{verb} {value.File} from {value.Source}: {Amount(value)}";
                    if (value.File is not null) fetched.Add(value.File);
                    if (live) Redraw(text);
                    else if (current != name || clock.GetElapsedTime(lastLine) >= PlainEvery)
                    {
                        output.WriteLine(text);
                        lastLine = clock.GetTimestamp();
                    }
                    current = name;
                    break;
                case FetchPhase.SourceFailed:
                    Permanent($"{value.Source} failed ({value.Message}); trying the next source");
                    break;
                case FetchPhase.Ready:
                    // Files that were already in the cache are not news; fetched ones are.
                    if (value.File is not null && fetched.Contains(value.File))
                        Permanent($"fetched {value.File} ({ProgressText.Bytes(value.Bytes)}), verified");
                    else if (live) Redraw("");
                    break;
            }
        }
    }

    private void Redraw(string text)
    {
        output.Write("\r\u001b[K" + text);
        output.Flush();
        redrawing = text.Length > 0;
    }

    private void Permanent(string text)
    {
        if (live) output.Write("\r\u001b[K");
        output.WriteLine(text);
        redrawing = false;
        current = null;
    }

    /// <summary>Ends a pending live line, so the next output starts on a fresh one.</summary>
    public void Finish()
    {
        lock (output)
        {
            if (redrawing) output.Write("\r\u001b[K");
            redrawing = false;
        }
    }

    private static string Amount(FetchProgress p) => p.TotalBytes > 0
        ? $"{ProgressText.Bytes(p.Bytes)} of {ProgressText.Bytes(p.TotalBytes)} ({100.0 * p.Bytes / p.TotalBytes:0}%)"
        : ProgressText.Bytes(p.Bytes);
}
