package server_test

import (
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/server"
	"wxhub/wechatsim"
)

// mediaSize is the body the media test sends through the proxy each way: WeChat's largest
// temporary image or video.
const mediaSize = 10 << 20

// heapPeak samples the heap in use every 2 ms while f runs and returns how far its peak
// rose above the heap in use before, after a collection.
func heapPeak(t testing.TB, f func()) int64 {
	t.Helper()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := int64(ms.HeapInuse)
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if v := int64(ms.HeapInuse); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	return peak.Load() - base
}

// TestGatewayStreamsTenMegabyteMediaBothWays uploads 10 MiB through the proxy (media/upload,
// a multipart body of unknown length) and downloads it again (media/get), checking the bytes
// and that the process's heap stays flat: a proxy that held either body whole would grow it
// by 10 MiB at least. The simulator, in the same process, keeps media in files.
// Not parallel: the heap is the whole process's. Measured with -race on a 2-core machine:
// the peak rose 3.7 MiB during the upload (the first MiB read ahead for a retry, and the
// buffers around it) and 0.1 MiB during the download; with the whole upload kept for a retry
// (RetryBodyLimit 32 MiB), 36.7 MiB, which fails the bound.
func TestGatewayStreamsTenMegabyteMediaBothWays(t *testing.T) {
	g := setupGateway(t, func(c *wechatsim.Config) { c.MediaDir = t.TempDir() })
	tok := wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, "secret-"+g.stable), "")["access_token"].(string)
	// Warm up the connections and the proxy's lazily made parts before measuring.
	require.Contains(t, wx(t, http.MethodGet, g.n.gw, "/cgi-bin/get_api_domain_ip?access_token="+tok, ""), "ip_list")

	sent := sha256.New()
	var mediaID string
	upGrowth := heapPeak(t, func() { mediaID = uploadMedia(t, g.n.gw, tok, sent) })

	got := sha256.New()
	var n int64
	downGrowth := heapPeak(t, func() { n = downloadMedia(t, g.n.gw, tok, mediaID, got) })
	require.Equal(t, int64(mediaSize), n)
	require.Equal(t, sent.Sum(nil), got.Sum(nil), "the bytes came back unchanged")

	t.Logf("RESULTS: 10 MiB through the gateway: heap in use peaked %.2f MiB above its start during the upload, %.2f MiB during the download",
		float64(upGrowth)/(1<<20), float64(downGrowth)/(1<<20))
	// The upload's first MiB is read ahead (a body that small would be kept for a retry).
	require.Less(t, upGrowth, int64(5<<20), "the upload was held in memory")
	require.Less(t, downGrowth, int64(5<<20), "the download was held in memory")
}

// uploadMedia sends mediaSize bytes to base's media/upload as a multipart body of unknown
// length, copying them to sent, and returns the media_id.
func uploadMedia(t testing.TB, base, tok string, sent io.Writer) string {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("media", "big.mp4")
		if err == nil {
			src := io.LimitReader(rand.NewChaCha8([32]byte{1}), mediaSize)
			_, err = io.Copy(part, io.TeeReader(src, sent))
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	res, err := http.Post(base+"/cgi-bin/media/upload?"+url.Values{"access_token": {tok}, "type": {"video"}}.Encode(),
		mw.FormDataContentType(), pr)
	require.NoError(t, err)
	defer res.Body.Close()
	var ans wechatsim.MediaAnswer
	require.NoError(t, json.NewDecoder(res.Body).Decode(&ans))
	require.NotEmpty(t, ans.MediaID, "upload answered without a media_id")
	return ans.MediaID
}

// downloadMedia copies base's media/get of mediaID to got and returns its length.
func downloadMedia(t testing.TB, base, tok, mediaID string, got io.Writer) int64 {
	t.Helper()
	res, err := http.Get(base + "/cgi-bin/media/get?" + url.Values{"access_token": {tok}, "media_id": {mediaID}}.Encode())
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, "application/octet-stream", res.Header.Get("Content-Type"))
	n, err := io.Copy(got, res.Body)
	require.NoError(t, err)
	return n
}

// BenchmarkGatewayMedia sends 10 MiB up (media/upload) and down again (media/get) per
// iteration: straight to the simulator (the floor: the same bytes and round trips with no
// gateway), through the gateway, and through a gateway that keeps the whole upload for a
// retry (RetryBodyLimit 32 MiB: the proxy that streaming replaces). It reports the largest
// rise of the process's heap in use above its start over the iterations (peak-MiB), beside
// the time per iteration. The simulator runs in the process and keeps media in files.
func BenchmarkGatewayMedia(b *testing.B) {
	e := newEnv(b, time.Hour, 5*time.Minute, func(c *wechatsim.Config) { c.MediaDir = b.TempDir() })
	gateway := func(cfg server.GatewayConfig) string {
		n := e.startNode(b, 30*time.Second)
		cfg.Upstream = e.simURL
		gw, err := n.srv.Gateway(cfg)
		require.NoError(b, err)
		hs := httptest.NewServer(gw.Handler())
		b.Cleanup(hs.Close)
		if cfg.RetryBodyLimit == 0 {
			e.tenant(b, n, "acme")
			e.account(b, n, "acme", appid(1))
		}
		return hs.URL
	}
	streamed := gateway(server.GatewayConfig{})
	buffered := gateway(server.GatewayConfig{RetryBodyLimit: 32 << 20})
	e.startWorker(b)
	tok := wx(b, http.MethodGet, streamed, tokenQuery(appid(1), "secret-"+appid(1)), "")["access_token"].(string)
	for _, c := range []struct{ name, base string }{{"direct", e.simURL}, {"streamed", streamed}, {"buffered", buffered}} {
		b.Run(c.name, func(b *testing.B) {
			var peak int64
			for b.Loop() {
				peak = max(peak, heapPeak(b, func() {
					id := uploadMedia(b, c.base, tok, io.Discard)
					require.Equal(b, int64(mediaSize), downloadMedia(b, c.base, tok, id, io.Discard))
				}))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		})
	}
}

// TestGatewayPassesALargeRejectedBodyBackOnce: a body over the retry limit is not kept, so
// when WeChat rejects the token it was sent with, the caller gets WeChat's answer as it came
// (and its SDK's next try gets the refreshed token), with no retry.
func TestGatewayPassesALargeRejectedBodyBackOnce(t *testing.T) {
	t.Parallel()
	g := setupGateway(t, func(c *wechatsim.Config) { c.MediaDir = t.TempDir() })
	tok := wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, "secret-"+g.stable), "")["access_token"].(string)
	g.settle(t)
	forceRefreshAtWeChat(t, g.e, g.stable)
	retries := counter(t, g.n.node, "wxhub_gateway_retries_total")

	upload := func() map[string]any {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			part, err := mw.CreateFormFile("media", "big.jpg")
			if err == nil {
				_, err = io.Copy(part, io.LimitReader(rand.NewChaCha8([32]byte{2}), 2<<20))
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		res, err := http.Post(g.n.gw+"/cgi-bin/media/upload?"+url.Values{"access_token": {tok}, "type": {"image"}}.Encode(),
			mw.FormDataContentType(), pr)
		require.NoError(t, err)
		defer res.Body.Close()
		var ans map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&ans))
		return ans
	}
	require.Equal(t, float64(wechatsim.CodeInvalidCredential), upload()["errcode"], "WeChat's rejection, passed back")
	require.Equal(t, retries, counter(t, g.n.node, "wxhub_gateway_retries_total"), "no retry of a body it did not keep")

	// A small call (the SDK's next) is retried with the refreshed token; so is the next upload
	// sent with it.
	require.Contains(t, wx(t, http.MethodGet, g.n.gw, "/cgi-bin/get_api_domain_ip?access_token="+tok, ""), "ip_list")
	require.Equal(t, retries+1, counter(t, g.n.node, "wxhub_gateway_retries_total"))
	require.NotEmpty(t, upload()["media_id"])
}
