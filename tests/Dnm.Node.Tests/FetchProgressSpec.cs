using Dnm.Core.Data;
using Dnm.Node.Progress;

namespace Dnm.Node.Tests;

public sealed class FetchProgressSpec
{
    private const long MB = 1 << 20;

    [Fact]
    public void Plain_output_should_name_each_download_its_progress_and_each_failed_source()
    {
        var clock = new ManualClock();
        var output = new StringWriter();
        IProgress<FetchProgress> progress = new FetchProgressWriter(output, live: false, clock);

        // A file already in the cache is not news.
        progress.Report(new FetchProgress(FetchPhase.Checking, "/cache/mnist", "labels", 0, 100));
        progress.Report(new FetchProgress(FetchPhase.Ready, "/cache/mnist", "labels", 100, 100));
        progress.Report(new FetchProgress(FetchPhase.SourceFailed, "https://a/images.gz", "images", 0, 4 * MB, "HTTP 404 NotFound"));
        progress.Report(new FetchProgress(FetchPhase.Downloading, "https://b/images.gz", "images", 0, 4 * MB));
        progress.Report(new FetchProgress(FetchPhase.Downloading, "https://b/images.gz", "images", MB, 4 * MB));   // too soon for a line
        clock.Advance(TimeSpan.FromSeconds(11));
        progress.Report(new FetchProgress(FetchPhase.Downloading, "https://b/images.gz", "images", 2 * MB, 4 * MB));
        progress.Report(new FetchProgress(FetchPhase.Ready, "https://b/images.gz", "images", 4 * MB, 4 * MB));

        Assert.Equal(
        [
            "https://a/images.gz failed (HTTP 404 NotFound); trying the next source",
            "downloading images from https://b/images.gz: 0 B of 4.0 MB (0%)",
            "downloading images from https://b/images.gz: 2.0 MB of 4.0 MB (50%)",
            "fetched images (4.0 MB), verified",
        ], output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Live_output_should_redraw_one_line_and_clear_it_when_done()
    {
        var output = new StringWriter();
        var writer = new FetchProgressWriter(output, live: true, new ManualClock());
        writer.Report(new FetchProgress(FetchPhase.Downloading, "src", "images", MB, 4 * MB));
        writer.Report(new FetchProgress(FetchPhase.Downloading, "src", "images", 2 * MB, 4 * MB));
        writer.Finish();

        Assert.Equal("\r\u001b[Kdownloading images from src: 1.0 MB of 4.0 MB (25%)\r\u001b[Kdownloading images from src: 2.0 MB of 4.0 MB (50%)\r\u001b[K",
            output.ToString());
    }
}
